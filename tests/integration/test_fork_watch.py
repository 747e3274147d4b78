"""The host-side fork watch on real processes: a fork of a "JVM" that never execs is killed, nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from moka_images.smoke.stuck_forks import ForkWatch, read_process_table

pytestmark = pytest.mark.integration

# Stands in for a JVM whose fork deadlocked before exec: its argv[0] is a java, its child a plain fork of it.
FORKING_JVM = "import os, time\nif os.fork() == 0:\n    time.sleep(120)\n    os._exit(0)\ntime.sleep(120)\n"


def test_a_fork_stuck_before_exec_is_killed_and_its_parent_left_running() -> None:
    marker = f"/moka-test-{uuid.uuid4().hex[:8]}/bin/java"
    root = subprocess.Popen(["bash", "-c", f'(exec -a {marker} {sys.executable} -c "$0"); sleep 120', FORKING_JVM])
    try:
        jvm, child = [], []
        deadline = time.monotonic() + 20
        while not child and time.monotonic() < deadline:
            table = read_process_table()
            jvm = [pid for pid, (ppid, _) in table.items() if ppid == root.pid]
            child = [pid for pid, (ppid, _) in table.items() if jvm and ppid == jvm[0]]
            time.sleep(0.1)
        assert jvm and child, "the stand-in JVM did not fork"
        killed: list[int] = []
        with ForkWatch(lambda: root.pid, killed.append, after=1.0, every=0.2):
            deadline = time.monotonic() + 15
            while not killed and time.monotonic() < deadline:
                time.sleep(0.2)
        assert killed == child
        table = read_process_table()
        assert table.get(child[0], (0, b""))[1] == b"", "the stuck fork is gone (or a zombie)"
        assert jvm[0] in table and root.poll() is None, "only the stuck fork was killed"
    finally:
        for pid, (_, cmdline) in read_process_table().items():
            if marker.encode() in cmdline:
                os.kill(pid, signal.SIGKILL)
        root.kill()
        root.wait()
