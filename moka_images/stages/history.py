"""The local, append-only history of promotions and rollbacks: one JSON object a line, fsynced, under a lock.

The durable record of a promotion is its attestation on the digest in the target registry; this file is the
same record on the machine that made it, for `status` and for people, and survives the registry being
unreachable.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from moka_images.config.settings import Settings


def history_file(settings: Settings) -> Path:
    """Where the history lives."""
    return settings.home / "history" / "promotions.jsonl"


def append(settings: Settings, record: Mapping[str, Any]) -> None:
    """Append one record, whole: under an exclusive lock, with one write, flushed to disk before returning."""
    path = history_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)  # closing drops the lock


def read(settings: Settings) -> list[dict[str, Any]]:
    """Every record, oldest first; a line cut short by a crash is skipped."""
    path = history_file(settings)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


@contextmanager
def exclusive(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed); `on_wait` is called if another holder makes us wait.

    The kernel drops the lock when the holder dies, so a killed promotion never leaves it stuck.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
