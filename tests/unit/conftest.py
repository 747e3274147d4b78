"""Unit tests start no processes and reach no network: any attempt fails the test, even if the code under test
catches the error. Loopback and Unix sockets stay open (a test may serve itself on 127.0.0.1)."""

from __future__ import annotations

import _posixsubprocess
import ipaddress
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

_OS_CALLS = ("system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp",
             "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe",
             "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe")
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


@pytest.fixture(autouse=True)
def no_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Replace every way of starting a process with one that records the attempt and raises.

    multiprocessing's spawn and forkserver start methods reach neither os nor subprocess: they call
    _posixsubprocess.fork_exec, which is refused too. Yields the recorded attempts, so the guard's own test can
    check and clear them.
    """
    attempts: list[str] = []

    def refuse(name: str) -> Callable[..., None]:
        def refused(*args: object, **kwargs: object) -> None:
            attempts.append(f"{name}{args[:2]!r}")
            raise RuntimeError(f"unit tests must not start processes ({name}); use tests/integration")
        return refused

    monkeypatch.setattr(subprocess, "Popen", refuse("subprocess.Popen"))
    monkeypatch.setattr(_posixsubprocess, "fork_exec", refuse("_posixsubprocess.fork_exec"))
    for name in _OS_CALLS:
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse(f"os.{name}"))
    yield attempts
    if attempts:
        pytest.fail(f"a unit test tried to start a process: {attempts[0]}")


def is_local(host: object) -> bool:
    """Whether an address or host name is loopback (IPv4, IPv6, IPv4-mapped) or `localhost`."""
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text.lower() in _LOCAL_NAMES
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse every connection, datagram and name lookup that is not loopback (or a Unix socket); record them.

    Yields the recorded attempts, so the guard's own test can check and clear them.
    """
    attempts: list[str] = []

    def check(what: str, family: int, address: Any) -> None:
        if family == getattr(socket, "AF_UNIX", None) or is_local(address[0] if isinstance(address, tuple) else address):
            return
        attempts.append(f"{what} {address!r}")
        raise RuntimeError(f"unit tests must not reach the network ({what} {address!r}); use tests/integration")

    real_connect, real_connect_ex, real_sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        check("connect", self.family, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check("connect", self.family, address)
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: bytes, *args: Any) -> int:
        check("sendto", self.family, args[-1])
        return real_sendto(self, data, *args)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None:
            check("name lookup", socket.AF_INET, host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    if attempts:
        pytest.fail(f"a unit test tried to reach the network: {attempts[0]}")
