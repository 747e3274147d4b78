"""Copy an image by digest between registries: blobs, then manifests bottom-up, then cosign's attachments.

Everything lands by digest and only once what it refers to is there, so a copy killed at any point is
finished by running it again, and no tag is touched here: `set_tags` moves tags afterwards, each only if it
still points where the plan saw it (compare-and-set, as far as the distribution API allows).

A blob the target repository lacks is mounted, when it can be, from another repository of the target registry
that holds it (no bytes move): the source repository when both are one registry, then the repositories the
blob-location cache saw holding it, then the caller's hints (the base image's repository); else it is uploaded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

import requests
import urllib3

from moka_images.adapters.blob_cache import BlobLocations
from moka_images.adapters.registry import Manifest, Registry, digest_of
from moka_images.adapters.retry import Policy
from moka_images.errors import MokaError, ServiceError
from moka_images.models import Digest

BLOB_ATTEMPTS = 4
_BLOB_RETRY = Policy(BLOB_ATTEMPTS, first=0.5, cap=8.0)
_TRANSIENT = (ServiceError, requests.RequestException, urllib3.exceptions.HTTPError)
_EMPTY_CREATED = "0001-01-01T00:00:00Z"  # what cosign writes in its signature images' configs
CACHED_MOUNT_TRIES = 3  # cache entries tried per blob: each failed mount costs a round trip (two on distribution)
_BYTES = {"blobs_copied": "bytes_copied", "blobs_mounted": "bytes_mounted"}


@dataclass
class CopyStats:
    """What a copy did: blobs copied, mounted or already there, bytes moved (and not moved, as mounted),
    manifests written, attachments."""

    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    bytes_copied: int = 0
    bytes_mounted: int = 0
    manifests_written: int = 0
    manifests_present: int = 0
    attachments: list[str] = field(default_factory=list)
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, what: str, size: int = 0) -> None:
        """Thread-safe counter update."""
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)
            if what in _BYTES:
                setattr(self, _BYTES[what], getattr(self, _BYTES[what]) + size)

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return bool(self.blobs_copied or self.blobs_mounted or self.manifests_written or self.attachments)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


@dataclass(frozen=True)
class Blob:
    """A blob to copy: digest and size from the manifest that names it."""

    digest: Digest
    size: int


def attachment_tags(tags: Iterable[str], digests: Iterable[Digest]) -> list[str]:
    """cosign's tags for these digests: `sha256-<hex>.sig`, `.att`, `.sbom` and any other suffix."""
    prefixes = tuple(f"sha256-{d.hex}." for d in digests)
    return sorted(t for t in tags if t.startswith(prefixes))


def walk(client: Registry, repository: str, digest: Digest) -> list[Manifest]:
    """The manifest at `digest` and everything it refers to, children before parents (the order to write)."""
    out: list[Manifest] = []
    seen: set[Digest] = set()

    def visit(d: Digest) -> None:
        if d in seen:
            return
        seen.add(d)
        manifest = client.get_manifest(repository, str(d))
        if manifest.is_index:
            for entry in manifest.json.get("manifests", []):
                visit(Digest(entry["digest"]))
        out.append(manifest)

    visit(digest)
    return out


def blobs_of(manifests: Iterable[Manifest]) -> list[Blob]:
    """Config and layer blobs of single manifests, each once."""
    found: dict[Digest, Blob] = {}
    for manifest in manifests:
        if manifest.is_index:
            continue
        doc = manifest.json
        for desc in [doc["config"], *doc.get("layers", [])] if "config" in doc else doc.get("layers", []):
            found.setdefault(Digest(desc["digest"]), Blob(Digest(desc["digest"]), int(desc["size"])))
    return list(found.values())


@dataclass(frozen=True)
class Mounts:
    """Where a blob missing in the target repository may be mounted from, besides the source repository of a
    copy within one registry: the cache's repositories for it (most recent first), then `hints`."""

    hints: tuple[str, ...] = ()
    cache: BlobLocations | None = None
    # The target repository is new (or holds no image yet): a blob that can be mounted is mounted without
    # asking first whether it is there, one request a blob instead of two. An upload still asks.
    mount_first: bool = False

    def candidates(self, src: Registry, src_repo: str, dst: Registry, dst_repo: str,
                   digest: Digest) -> list[tuple[str, bool]]:
        """(repository, from the cache) in the order to try, each once, never the target repository itself."""
        same = [(src_repo, False)] if src.registry == dst.registry else []
        cached = [(r, True) for r in self.cache.where(dst.registry, digest, CACHED_MOUNT_TRIES)] if self.cache else []
        found: dict[str, bool] = {}
        for repo, from_cache in [*same, *cached, *((h, False) for h in self.hints)]:
            if repo != dst_repo:
                found.setdefault(repo, from_cache)
        return list(found.items())


def _mount(dst: Registry, dst_repo: str, blob: Blob, candidates: Sequence[tuple[str, bool]],
           cache: BlobLocations | None) -> bool:
    """Try each candidate until one mounts; a refusal (or any failure: an upload follows) moves to the next."""
    for repo, from_cache in candidates:
        try:
            if dst.mount_blob(dst_repo, blob.digest, repo):
                return True
        except ServiceError:
            pass  # e.g. ECR refusing a mount across encryption settings: upload instead
        if from_cache and cache is not None:
            cache.forget(dst.registry, repo, blob.digest)
    return False


def copy_blob(src: Registry, src_repo: str, dst: Registry, dst_repo: str, blob: Blob,
              stats: CopyStats, mounts: Mounts | None = None) -> None:
    """One blob, unless it is there: mounted from a repository of the target registry that holds it, else
    streamed from the source.

    A streamed upload cannot be replayed piecemeal, so a failed one is retried whole, with backoff.
    """
    mounts = mounts or Mounts()
    candidates = mounts.candidates(src, src_repo, dst, dst_repo, blob.digest)
    if not (mounts.mount_first and candidates) and dst.blob_exists(dst_repo, blob.digest):
        stats.count("blobs_present")
        return
    if _mount(dst, dst_repo, blob, candidates, mounts.cache):
        stats.count("blobs_mounted", blob.size)
        return

    def stream() -> None:
        with src.open_blob(src_repo, blob.digest) as resp:
            dst.push_blob(dst_repo, cast(BinaryIO, resp.raw), blob.digest, blob.size)  # urllib3's stream is one

    try:
        _BLOB_RETRY.call(stream, retry_error=lambda exc: isinstance(exc, _TRANSIENT),
                         warn=lambda exc: f"blob {blob.digest.short}: {exc.__class__.__name__}; retrying")
    except _TRANSIENT as exc:
        raise ServiceError(f"copying blob {blob.digest.short} to {dst.registry}/{dst_repo} failed "
                           f"{BLOB_ATTEMPTS} times: {exc}", "run the promotion again; it resumes") from exc
    stats.count("blobs_copied", blob.size)


def _copy_blobs(src: Registry, src_repo: str, dst: Registry, dst_repo: str, blobs: Sequence[Blob],
                stats: CopyStats, workers: int, mounts: Mounts) -> None:
    if mounts.cache is not None:  # the source's manifest names them: its repository holds them
        mounts.cache.seen(src.registry, src_repo, [b.digest for b in blobs])
    # Largest first, so the long uploads start early and the pool drains evenly.
    ordered = sorted(blobs, key=lambda b: -b.size)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="moka-copy") as pool:
        futures = [pool.submit(copy_blob, src, src_repo, dst, dst_repo, b, stats, mounts) for b in ordered]
        errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        first = errors[0]
        if isinstance(first, MokaError):
            raise first
        raise ServiceError(f"copying blobs to {dst.registry}/{dst_repo} failed: {first}") from first
    if mounts.cache is not None:  # present, mounted or uploaded: the target repository holds every one now
        mounts.cache.seen(dst.registry, dst_repo, [b.digest for b in blobs])


def _put_manifests(dst: Registry, dst_repo: str, manifests: Sequence[Manifest], stats: CopyStats) -> None:
    for manifest in manifests:
        if dst.head_manifest(dst_repo, str(manifest.digest)) == manifest.digest:
            stats.count("manifests_present")
            continue
        dst.put_manifest(dst_repo, str(manifest.digest), manifest.raw, manifest.media_type)
        stats.count("manifests_written")


def merge_attachment(ours: Manifest, theirs: Manifest, config: dict[str, Any]) -> tuple[bytes, bytes] | None:
    """Our attachment manifest (signatures or attestations) with the layers of theirs it lacks appended.

    Returns (manifest, config) bytes, or None when ours already holds every layer of theirs. A layer is
    its whole descriptor: cosign gives two signatures of one payload the same blob and different annotations.
    `config` is our config document; its diff_ids and history follow the layers, as cosign writes them.
    """
    doc = ours.json
    have = [json.dumps(layer, sort_keys=True) for layer in doc.get("layers", [])]
    extra = [layer for layer in theirs.json.get("layers", []) if json.dumps(layer, sort_keys=True) not in have]
    if not extra:
        return None
    layers = [*doc.get("layers", []), *extra]
    config = {**config, "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
              "history": [{"created": _EMPTY_CREATED} for _ in layers]}
    config_raw = json.dumps(config, separators=(",", ":")).encode()
    merged = {**doc, "config": {**doc["config"], "digest": str(digest_of(config_raw)), "size": len(config_raw)},
              "layers": layers}
    return json.dumps(merged, separators=(",", ":")).encode(), config_raw


def _copy_attachment(src: Registry, src_repo: str, dst: Registry, dst_repo: str, tag: str,
                     stats: CopyStats, workers: int, mounts: Mounts) -> None:
    """Copy one cosign tag; if the target has its own version (another environment's signature), merge."""
    theirs = src.get_manifest(src_repo, tag)
    if theirs.is_index:
        raise ServiceError(f"{src.registry}/{src_repo}:{tag} is an index; cosign attachments are single manifests")
    _copy_blobs(src, src_repo, dst, dst_repo, blobs_of([theirs]), stats, workers, mounts)
    current = dst.head_manifest(dst_repo, tag)
    if current == theirs.digest:
        return
    if current is None:
        dst.put_manifest(dst_repo, tag, theirs.raw, theirs.media_type)
    else:
        ours = dst.get_manifest(dst_repo, tag)
        merged = merge_attachment(ours, theirs, json.loads(dst.get_blob(dst_repo, Digest(ours.json["config"]["digest"]))))
        if merged is None:
            return
        raw, config_raw = merged
        dst.push_blob(dst_repo, config_raw)
        dst.put_manifest(dst_repo, tag, raw, ours.media_type)
    stats.attachments.append(tag)


def copy_image(src: Registry, src_repo: str, dst: Registry, dst_repo: str, digest: Digest, *,
               workers: int = 4, attachments: bool = True, mount_from: Sequence[str] = (),
               cache: BlobLocations | None = None, new_target: bool = False) -> CopyStats:
    """Copy the image at `digest`, byte for byte, and (with `attachments`) its cosign signatures and attestations.

    Order: every blob (in parallel, `workers` at a time), the platform manifests by digest, the index by digest,
    then the `sha256-<hex>.*` tags of the index and of each manifest under it. No other tag is written.
    A blob is mounted where it can be: see the module's note; `mount_from` are repositories of the target
    registry likely to hold some (tried after the cache's), and `cache` learns where every blob was seen.
    `new_target`: `dst_repo` holds no image yet, so blobs are mounted without first asking whether they are there.
    """
    start = time.monotonic()
    stats = CopyStats()
    mounts = Mounts(tuple(mount_from), cache, mount_first=new_target)
    manifests = walk(src, src_repo, digest)
    if manifests[-1].digest != digest:
        raise ServiceError(f"{src.registry}/{src_repo}@{digest} did not read back as itself")
    _copy_blobs(src, src_repo, dst, dst_repo, blobs_of(manifests), stats, workers, mounts)
    _put_manifests(dst, dst_repo, manifests, stats)
    if attachments:
        for tag in attachment_tags(src.list_tags(src_repo), [m.digest for m in manifests]):
            _copy_attachment(src, src_repo, dst, dst_repo, tag, stats, workers, mounts)
    stats.seconds = round(time.monotonic() - start, 3)
    return stats


@dataclass(frozen=True)
class TagSet:
    """A tag to point at a digest, and where the plan saw it pointing (None: absent)."""

    tag: str
    expected: Digest | None


def set_tags(dst: Registry, repository: str, digest: Digest, tags: Sequence[TagSet]) -> list[str]:
    """Point each tag at `digest`, in order, only once the image is complete there; returns the tags moved.

    Just before each move the tag is read again: if it no longer points where the plan saw it (and not yet at
    `digest`), someone else moved it, and nothing further moves. The registry has no conditional PUT, so
    this narrows the race rather than closing it; promotions of one image also hold a lock.
    """
    if dst.head_manifest(repository, str(digest)) is None:
        raise ServiceError(f"{dst.registry}/{repository}@{digest.short} is not there; tags only follow a complete copy",
                           "run the promotion again to finish the copy")
    index = dst.get_manifest(repository, str(digest))
    # The registry accepted the index only once its manifests were there, and those only with their blobs;
    # looking at the children again costs little and guards registries that check less.
    children = [Digest(e["digest"]) for e in index.json.get("manifests", [])] if index.is_index else []
    missing = [d.short for d in children if dst.head_manifest(repository, str(d)) is None]
    if missing:
        raise ServiceError(f"{dst.registry}/{repository}@{digest.short} is incomplete (missing {', '.join(missing)})",
                           "run the promotion again to finish the copy")
    moved: list[str] = []
    for item in tags:
        now = dst.head_manifest(repository, item.tag)
        if now == digest:
            continue
        if now != item.expected:
            raise ServiceError(f"{dst.registry}/{repository}:{item.tag} moved to {now} while promoting "
                               f"(expected {item.expected or 'no tag'}); tags moved so far: {', '.join(moved) or 'none'}",
                               "another promotion ran at the same time; run again to re-plan")
        dst.put_manifest(repository, item.tag, index.raw, index.media_type)
        moved.append(item.tag)
    return moved
