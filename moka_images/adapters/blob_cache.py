"""Where blobs were seen: for each registry, the repositories known to hold a blob, so a copy can mount it.

Like skopeo's blob-info cache, it is a hint and never the truth: an entry goes stale when an image expires or a
repository is deleted, so a caller tries a mount and falls back, and forgets an entry the registry refused.
One sqlite file per machine (`$MOKA_HOME/cache/`), shared by every process and thread: WAL, a busy timeout,
each write one short transaction. Bounded per blob (the most recent repositories) and in total (the oldest
entries go). A cache that cannot be opened or written is logged once and then acts as empty: it may make a copy
slower, never fail it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self, TypeVar

from moka_images import log
from moka_images.models import Digest

PER_BLOB = 8  # repositories kept per blob and registry: more would only be tried after these failed
MAX_ROWS = 200_000  # about 40 MB; a fleet's worth of images across a few registries
BUSY_SECONDS = 10.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS locations (
    registry TEXT NOT NULL, digest TEXT NOT NULL, repository TEXT NOT NULL, seen REAL NOT NULL,
    PRIMARY KEY (registry, digest, repository)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS locations_seen ON locations (seen);
"""
_T = TypeVar("_T")


class BlobLocations:
    """The blob-location cache in one sqlite file; thread-safe, and safe to share with other processes."""

    def __init__(self, path: Path, *, per_blob: int = PER_BLOB, max_rows: int = MAX_ROWS,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.per_blob, self.max_rows, self._clock = per_blob, max_rows, clock
        self._lock = threading.Lock()  # one connection for every thread: its transactions must not interleave
        self._db: sqlite3.Connection | None = None
        self._broken = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (the cache opens it again if used after)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def seen(self, registry: str, repository: str, digests: Iterable[Digest]) -> None:
        """Record that `repository` of `registry` holds these blobs (now)."""
        now = self._clock()
        rows = [(registry, str(d), repository, now) for d in dict.fromkeys(digests)]
        if not rows:
            return

        def write(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.executemany("INSERT INTO locations VALUES (?, ?, ?, ?) "
                               "ON CONFLICT DO UPDATE SET seen = max(seen, excluded.seen)", rows)
                db.executemany("DELETE FROM locations WHERE registry = ?1 AND digest = ?2 AND repository NOT IN "
                               "(SELECT repository FROM locations WHERE registry = ?1 AND digest = ?2 "
                               "ORDER BY seen DESC, repository LIMIT ?3)",
                               [(r[0], r[1], self.per_blob) for r in rows])
                (count,), = db.execute("SELECT count(*) FROM locations")
                if count > self.max_rows:  # down to 90%, so the next prune is many copies away
                    db.execute("DELETE FROM locations WHERE seen <= "
                               "(SELECT seen FROM locations ORDER BY seen DESC LIMIT 1 OFFSET ?)",
                               (self.max_rows * 9 // 10,))

        self._run("record blobs", write, None)

    def where(self, registry: str, digest: Digest, limit: int = PER_BLOB) -> list[str]:
        """Repositories of `registry` that were seen holding `digest`, most recently seen first."""
        def read(db: sqlite3.Connection) -> list[str]:
            return [r for (r,) in db.execute("SELECT repository FROM locations WHERE registry = ? AND digest = ? "
                                             "ORDER BY seen DESC, repository LIMIT ?",
                                             (registry, str(digest), limit))]

        return self._run("look a blob up", read, [])

    def forget(self, registry: str, repository: str, digest: Digest) -> None:
        """Drop one entry: the registry would not mount the blob from there."""
        def delete(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.execute("DELETE FROM locations WHERE registry = ? AND digest = ? AND repository = ?",
                           (registry, str(digest), repository))

        self._run("forget a blob", delete, None)

    def _run(self, what: str, fn: Callable[[sqlite3.Connection], _T], default: _T) -> _T:
        with self._lock:
            if self._broken:
                return default
            try:
                return fn(self._connect())
            except (sqlite3.Error, OSError) as exc:
                self._broken = True  # once: the rest of this run copies as if there were no cache
                log.warn(f"blob location cache {self.path}: cannot {what} ({exc}); going on without it",
                         cache=str(self.path))
                return default

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we open each transaction ourselves, IMMEDIATE, so a writer waits for the
            # file lock up front (busy timeout) rather than failing to upgrade a read lock half way
            db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer in another process
                db.execute("PRAGMA synchronous=NORMAL")  # a lost last write after a power cut is only a lost hint
                db.executescript(_SCHEMA)
            except sqlite3.Error:
                db.close()
                raise
            self._db = db
        return self._db


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
