"""The unit-test guards refuse every way of starting a process, multiprocessing's included, and every connection,
datagram and name lookup that is not loopback."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess

import pytest


@pytest.mark.parametrize("start", [
    lambda: subprocess.run(["true"], check=False),
    lambda: subprocess.check_output(["true"]),
    lambda: os.system("true"),
    lambda: os.execv("/bin/true", ["true"]),
    lambda: os.posix_spawn("/bin/true", ["true"], {}),
    lambda: multiprocessing.get_context("spawn").Process(target=print).start(),
    lambda: multiprocessing.get_context("forkserver").Process(target=print).start(),
    lambda: multiprocessing.get_context("fork").Process(target=print).start(),
], ids=["run", "check_output", "system", "execv", "posix_spawn", "mp-spawn", "mp-forkserver", "mp-fork"])
def test_guard_refuses_processes(no_processes: list[str], start) -> None:
    with pytest.raises(RuntimeError, match="must not start processes"):
        start()
    assert len(no_processes) == 1
    no_processes.clear()  # the attempt was the point of this test


@pytest.mark.parametrize("reach", [
    lambda: socket.create_connection(("192.0.2.1", 443), timeout=1),  # TEST-NET-1: never routed
    lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).connect_ex(("2001:db8::1", 443, 0, 0)),
    lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("192.0.2.1", 53)),
    lambda: socket.getaddrinfo("registry.example.com", 443),
], ids=["tcp", "tcp6", "udp", "dns"])
def test_guard_refuses_the_network(no_network: list[str], reach) -> None:
    with pytest.raises(RuntimeError, match="must not reach the network"):
        reach()
    assert len(no_network) == 1
    no_network.clear()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_stays_open(no_network: list[str], host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as server:
        server.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection((host, server.getsockname()[1]), timeout=5):
            pass
    assert no_network == []
