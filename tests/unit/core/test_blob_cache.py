"""The blob-location cache: most recent first, per registry, bounded, forgiving, shared by threads and handles."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

from moka_images.adapters.blob_cache import BlobLocations
from moka_images.adapters.registry import digest_of
from moka_images.models import Digest

REG, OTHER = "127.0.0.1:15003", "127.0.0.1:15004"
A, B = digest_of(b"a"), digest_of(b"b")


def ticking() -> Any:
    """A clock that moves one second a call, so 'most recent' is unambiguous."""
    counter = itertools.count(1000)
    return lambda: float(next(counter))


def test_where_answers_the_repositories_of_that_registry_most_recent_first(tmp_path: Path) -> None:
    with BlobLocations(tmp_path / "c.sqlite", clock=ticking()) as cache:
        cache.seen(REG, "moka/spark-3.5", [A, B])
        cache.seen(REG, "moka/data-eng/etl", [A])
        cache.seen(OTHER, "moka/elsewhere", [A])
        assert cache.where(REG, A) == ["moka/data-eng/etl", "moka/spark-3.5"]
        assert cache.where(REG, B) == ["moka/spark-3.5"] and cache.where(OTHER, B) == []
        assert cache.where(REG, A, limit=1) == ["moka/data-eng/etl"]
        cache.seen(REG, "moka/spark-3.5", [A])  # seen again: the most recent again
        assert cache.where(REG, A) == ["moka/spark-3.5", "moka/data-eng/etl"]


def test_a_forgotten_entry_is_gone_and_the_others_stay(tmp_path: Path) -> None:
    with BlobLocations(tmp_path / "c.sqlite", clock=ticking()) as cache:
        cache.seen(REG, "x", [A])
        cache.seen(REG, "y", [A])
        cache.forget(REG, "y", A)
        assert cache.where(REG, A) == ["x"]


def test_entries_persist_and_are_shared_between_handles(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "deeper" / "c.sqlite"  # folders are made
    with BlobLocations(path) as first:
        first.seen(REG, "moka/spark-3.5", [A])
    with BlobLocations(path) as second, BlobLocations(path) as third:
        assert second.where(REG, A) == ["moka/spark-3.5"]
        third.seen(REG, "moka/other", [A])
        assert set(second.where(REG, A)) == {"moka/spark-3.5", "moka/other"}


def test_each_blob_keeps_its_most_recent_repositories_and_the_whole_is_bounded(tmp_path: Path) -> None:
    with BlobLocations(tmp_path / "c.sqlite", per_blob=3, max_rows=20, clock=ticking()) as cache:
        for i in range(6):
            cache.seen(REG, f"repo-{i}", [A])
        assert cache.where(REG, A) == ["repo-5", "repo-4", "repo-3"]
        for i in range(30):
            cache.seen(REG, "many", [digest_of(str(i).encode())])
        newest = digest_of(b"29")
        assert cache.where(REG, newest) == ["many"]
        assert cache.where(REG, A) == []  # the oldest went first
    with closing(sqlite3.connect(tmp_path / "c.sqlite")) as db:
        (count,), = db.execute("SELECT count(*) FROM locations")
    assert 0 < count <= 20


def test_threads_and_handles_write_at_once_without_losing_an_entry(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    handles = [BlobLocations(path) for _ in range(3)]
    digests = [digest_of(str(i).encode()) for i in range(40)]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            cache = handles[n % len(handles)]
            for d in digests:
                cache.seen(REG, f"repo-{n}", [d])
                cache.where(REG, d)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(sorted(handles[0].where(REG, d)) == [f"repo-{n}" for n in range(6)] for d in digests)
    for cache in handles:
        cache.close()


def test_an_unusable_file_warns_once_and_the_cache_acts_empty(tmp_path: Path,
                                                             warnings: list[tuple[str, dict[str, Any]]]) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"not a database, " * 100)
    with BlobLocations(path) as cache:
        cache.seen(REG, "x", [A])
        assert cache.where(REG, A) == []
        cache.forget(REG, "x", A)
    assert len(warnings) == 1 and "going on without it" in warnings[0][0]


def test_nothing_to_record_opens_nothing(tmp_path: Path) -> None:
    cache = BlobLocations(tmp_path / "c.sqlite")
    cache.seen(REG, "x", [])
    assert not (tmp_path / "c.sqlite").exists()
    assert cache.where(REG, Digest("sha256:" + "0" * 64)) == []
