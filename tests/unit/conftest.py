"""Unit tests start no processes: any attempt fails the test, even if the code under test catches the error."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator

import pytest

_OS_CALLS = ("system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp",
             "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe",
             "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe")


@pytest.fixture(autouse=True)
def no_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Replace every way of starting a process with one that records the attempt and raises.

    Yields the recorded attempts, so the guard's own test can check and clear them.
    """
    attempts: list[str] = []

    def refuse(name: str) -> Callable[..., None]:
        def refused(*args: object, **kwargs: object) -> None:
            attempts.append(f"{name}{args[:2]!r}")
            raise RuntimeError(f"unit tests must not start processes ({name}); use tests/integration")
        return refused

    monkeypatch.setattr(subprocess, "Popen", refuse("subprocess.Popen"))
    for name in _OS_CALLS:
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse(f"os.{name}"))
    yield attempts
    if attempts:
        pytest.fail(f"a unit test tried to start a process: {attempts[0]}")
