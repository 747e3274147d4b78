"""Small blobs read from registries, kept on disk by digest from one run to the next.

Signature payloads, attestation envelopes and image configs never change once written, and `status` and the
promotion gates read the same ones many times a day. The store is content-addressed and checks every read: a
file that no longer hashes to its name is dropped and the blob read again from the registry. It keeps bytes,
never answers: what a signature or attestation covers comes from its manifest, which is read fresh (tags
move), so the store cannot make a verification pass that the registry's own bytes would fail. Bounded: past
`max_bytes`, the files read least recently go. A store that cannot be read or written acts as empty (logged
once): it may make a run slower, never fail it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from pathlib import Path

from moka_images import log
from moka_images.models import Digest

MAX_BYTES = 256 * 1024 * 1024  # a fleet's signatures and attestations several times over
PRUNE_EVERY = 512  # writes between size checks (a check lists the whole store)
STALE_PART_SECONDS = 3600  # a half-written file this old was left by a run that died


class BlobStore:
    """Blobs by digest under `root` (`sha256/ab/abcd...`); thread-safe, and safe to share with other processes."""

    def __init__(self, root: Path, *, max_bytes: int = MAX_BYTES, prune_every: int = PRUNE_EVERY) -> None:
        self.root, self.max_bytes, self.prune_every = root, max_bytes, prune_every
        self._lock = threading.Lock()
        self._writes = 0
        self._broken = False

    def _path(self, digest: Digest) -> Path:
        return self.root / "sha256" / digest.hex[:2] / digest.hex

    def get(self, digest: Digest) -> bytes | None:
        """The blob's bytes if kept and still intact; None otherwise."""
        path = self._path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._failed(exc)
            return None
        if not _holds(data, digest):
            path.unlink(missing_ok=True)
            return None
        try:
            os.utime(path)  # read recently: pruned last
        except OSError:
            pass
        return data

    def put(self, digest: Digest, data: bytes) -> None:
        """Keep `data` (which must hash to `digest`) under its digest; written whole or not at all."""
        if self._broken or not _holds(data, digest):
            return
        path = self._path(digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".part-", delete=False) as tmp:
                tmp.write(data)
            os.replace(tmp.name, path)
        except OSError as exc:
            self._failed(exc)
            return
        with self._lock:
            self._writes += 1
            due = self._writes % self.prune_every == 0
        if due:
            self.prune()

    def prune(self) -> int:
        """Drop the least recently read files until the store holds at most `max_bytes`; returns files dropped."""
        files = []
        for path in self.root.glob("sha256/*/*"):
            try:
                st = path.stat()
            except OSError:  # another process pruned or replaced it meanwhile
                continue
            if not path.name.startswith("."):
                files.append((st.st_mtime, st.st_size, path))
            elif st.st_mtime < time.time() - STALE_PART_SECONDS:
                _drop(path)
        total = sum(size for _, size, _ in files)
        dropped = 0
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            _drop(path)
            total -= size
            dropped += 1
        return dropped

    def _failed(self, exc: OSError) -> None:
        with self._lock:
            if self._broken:
                return
            self._broken = True
        log.warn(f"blob store {self.root} is not usable ({exc}); reading every blob from its registry")


def _holds(data: bytes, digest: Digest) -> bool:
    return hashlib.sha256(data).hexdigest() == digest.hex


def _drop(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
