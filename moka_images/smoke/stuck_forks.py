"""Forks of a JVM that deadlock in qemu-user before their exec, found and killed from the host.

Under qemu-user (an emulated arch), a fork of the many-threaded JVM now and then deadlocks inside the emulator
before it can exec its program. The JVM forks more than one might think: Hadoop's shell helpers at start,
`chmod` for every local file it writes, Spark's `rm -rf` of its temp dirs at exit. Such a child is a copy of
its JVM: the same command line, the JVM its parent. No real program stays like that for seconds, so one that
does is killed, and the JVM's call fails (Hadoop and Spark fall back or fail the task) instead of waiting
forever. The PySpark driver in the container does the same for its own JVM and retries the job that met one
(payload/pyspark_suite.py); this host-side watch covers every application, its start and its exit included.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Self

# pid -> (parent pid, command line as the kernel shows it, NUL-separated)
ProcessTable = Mapping[int, tuple[int, bytes]]

STUCK_AFTER = 20.0  # seconds; the in-container watch acts at 15 s, so while PySpark runs it goes first


def is_jvm(cmdline: bytes) -> bool:
    """Whether a command line runs `java`: its program, or under qemu's binfmt (argv[0] kept) the emulated one."""
    return any(arg == b"java" or arg.endswith(b"/java") for arg in cmdline.split(b"\0")[:3])


def stuck_forks(table: ProcessTable, root: int, first_seen: dict[int, float], now: float,
                after: float = STUCK_AFTER) -> list[int]:
    """Descendants of `root` that have been a copy of their JVM parent for `after` seconds by `now`. Pure, but
    for `first_seen` (pid -> when first seen stuck), which it updates for the next call."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    seen: dict[int, float] = {}
    todo, stuck = [root], []
    while todo:
        parent = todo.pop()
        for pid in children.get(parent, []):
            todo.append(pid)
            cmdline = table[pid][1]
            if parent in table and cmdline == table[parent][1] and is_jvm(cmdline):
                seen[pid] = first_seen.get(pid, now)
                if now - seen[pid] >= after:
                    stuck.append(pid)
    first_seen.clear()
    first_seen.update(seen)
    return sorted(stuck)


def read_process_table(proc: Path = Path("/proc")) -> dict[int, tuple[int, bytes]]:
    """Every process the kernel lists: parent and command line (processes that end meanwhile are skipped)."""
    table = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            stat = (proc / entry / "stat").read_bytes()
            cmdline = (proc / entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(b")", 1)[-1].split()
        if len(fields) >= 2:
            table[int(entry)] = (int(fields[1]), cmdline)
    return table


class ForkWatch:
    """A thread that, while an application's container runs, kills the stuck forks below its main process."""

    def __init__(self, root_pid: Callable[[], int | None], on_kill: Callable[[int], None], *,
                 after: float = STUCK_AFTER, every: float = 2.0) -> None:
        self.root_pid, self.on_kill, self.after, self.every = root_pid, on_kill, after, every
        self.killed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="moka-fork-watch", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        root: int | None = None
        first_seen: dict[int, float] = {}
        while not self._stop.wait(self.every):
            root = root or self.root_pid()
            if not root:
                continue
            for pid in stuck_forks(read_process_table(), root, first_seen, time.monotonic(), self.after):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    continue
                self.killed += 1
                self.on_kill(pid)
