"""The on-disk store of small blobs: content-addressed, checked on every read, bounded, and never in the way."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from moka_images.adapters.blob_store import BlobStore
from moka_images.adapters.registry import digest_of


def test_a_kept_blob_comes_back_and_an_unknown_one_does_not(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    data = b'{"payloadType": "application/vnd.in-toto+json"}'
    store.put(digest_of(data), data)
    assert store.get(digest_of(data)) == data
    assert BlobStore(tmp_path).get(digest_of(data)) == data  # another run, another process
    assert store.get(digest_of(b"never kept")) is None


def test_bytes_that_do_not_match_their_digest_are_never_kept_nor_returned(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    store.put(digest_of(b"claimed"), b"other bytes")
    assert store.get(digest_of(b"claimed")) is None and not list(tmp_path.rglob("*"))
    good = b"signature payload"
    store.put(digest_of(good), good)
    kept = tmp_path / "sha256" / digest_of(good).hex[:2] / digest_of(good).hex
    kept.write_bytes(b"tampered with on disk")
    assert store.get(digest_of(good)) is None and not kept.exists()  # dropped: the registry is asked again


def test_past_its_size_the_least_recently_read_go_first(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, max_bytes=250, prune_every=10_000)
    blobs = [bytes([i]) * 100 for i in range(4)]
    for age, blob in enumerate(blobs):
        store.put(digest_of(blob), blob)
        path = tmp_path / "sha256" / digest_of(blob).hex[:2] / digest_of(blob).hex
        os.utime(path, (1000 + age, 1000 + age))
    assert store.get(digest_of(blobs[0])) == blobs[0]  # read now: the most recent
    assert store.prune() == 2
    assert [store.get(digest_of(b)) is not None for b in blobs] == [True, False, False, True]


def test_writes_prune_on_their_own_every_so_often(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, max_bytes=300, prune_every=5)
    for i in range(5):
        store.put(digest_of(bytes([i]) * 100), bytes([i]) * 100)
    assert sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()) <= 300


def test_a_store_that_cannot_be_written_acts_as_empty(tmp_path: Path,
                                                     warnings: list[tuple[str, dict[str, Any]]]) -> None:
    blocker = tmp_path / "store"
    blocker.write_text("a file where the store's folder should be")
    store = BlobStore(blocker)
    store.put(digest_of(b"x"), b"x")
    store.put(digest_of(b"y"), b"y")
    assert store.get(digest_of(b"x")) is None
    assert [m for m, _ in warnings if "is not usable" in m] == [warnings[0][0]]  # said once, not per blob
