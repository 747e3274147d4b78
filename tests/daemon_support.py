"""Daemons the integration tests start on ports of their own: a free port, wait until ready, stop."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from moka_images.devstack.services import Daemon, is_ready


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, pid: int, log: Path) -> None:
    """Wait up to 30 s for `url` to answer; fail with the log's tail if the process dies or never answers."""
    deadline = time.monotonic() + 30
    while not is_ready(Daemon("probe", [], ready_url=url)):
        if time.monotonic() > deadline or os.waitpid(pid, os.WNOHANG)[0]:
            pytest.fail(f"{url} did not come up: {log.read_text()[-2000:]}")
        time.sleep(0.1)


def stop(pid: int) -> None:
    """SIGTERM a child we started and reap it (gone already is fine)."""
    try:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
