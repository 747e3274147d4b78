"""The unit-test guard refuses every way of starting a process."""

from __future__ import annotations

import os
import subprocess

import pytest


@pytest.mark.parametrize("start", [
    lambda: subprocess.run(["true"], check=False),
    lambda: subprocess.check_output(["true"]),
    lambda: os.system("true"),
    lambda: os.execv("/bin/true", ["true"]),
    lambda: os.posix_spawn("/bin/true", ["true"], {}),
])
def test_guard_refuses_processes(no_processes: list[str], start) -> None:
    with pytest.raises(RuntimeError, match="must not start processes"):
        start()
    assert len(no_processes) == 1
    no_processes.clear()  # the attempt was the point of this test
