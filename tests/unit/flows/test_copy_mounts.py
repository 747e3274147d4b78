"""Mount, don't copy: which repositories of the target a missing blob is mounted from, in which order, and what
happens when a mount is refused, against the in-memory registry (which mounts what it holds and counts it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import FakeRegistry, Pushed, add_signature, layers_of, push_image

from moka_images.adapters.blob_cache import BlobLocations
from moka_images.adapters.copy import copy_image
from moka_images.errors import ServiceError
from moka_images.models import Digest

BASE, TEAM = "moka/spark-3.5", "moka/data-eng/etl-jobs"


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[BlobLocations]:
    with BlobLocations(tmp_path / "blob-locations.sqlite") as cache:
        yield cache


def _mounts(reg: FakeRegistry) -> list[tuple[str, str, str]]:
    """(into, from, digest) of each mount, in order."""
    return [(e[2], e[3], e[4]) for e in reg.writes if e[0] == "mount"]


def _blobs(reg: FakeRegistry, repo: str, image: Pushed) -> dict[Digest, int]:
    """Every config and layer blob of the image's platforms, with its size."""
    out: dict[Digest, int] = {}
    for child in image.platforms.values():
        doc = reg.get_manifest(repo, str(child)).json
        for desc in [doc["config"], *doc["layers"]]:
            out[Digest(desc["digest"])] = int(desc["size"])
    return out


def _base_and_team(src: FakeRegistry) -> tuple[Pushed, Pushed]:
    base = push_image(src, BASE, "1.0.1", seed="base")
    team = push_image(src, TEAM, "2.0.0", seed="team", labels={"org.opencontainers.image.base.name": "spark-3.5"},
                      below=layers_of(src, BASE, base))
    return base, team


def test_a_team_image_copied_after_its_base_mounts_the_bases_layers_and_uploads_only_its_own() -> None:
    src, dst = FakeRegistry("test.example"), FakeRegistry("staging.example")
    base, team = _base_and_team(src)
    copy_image(src, BASE, dst, BASE, base.digest)
    shared, mine = _blobs(src, BASE, base), _blobs(src, TEAM, team)
    own = {d: s for d, s in mine.items() if d not in shared}
    layers_below = {d for d in mine if d in shared}
    assert len(layers_below) == 2 and len(own) == 4  # a base layer per platform; a config and a layer per platform

    stats = copy_image(src, TEAM, dst, TEAM, team.digest, mount_from=[BASE])

    assert (stats.blobs_mounted, stats.blobs_copied) == (2, 4)
    assert stats.bytes_copied == sum(own.values()) == dst.bytes_sent - sum(shared.values())
    assert stats.bytes_mounted == sum(mine[d] for d in layers_below)
    assert {(into, frm) for into, frm, _ in _mounts(dst)} == {(TEAM, BASE)}
    assert dst.get_manifest(TEAM, str(team.digest)).raw == team.raw
    # children before the index, as ever
    manifests = [e[3] for e in dst.writes if e[0] == "manifest" and e[2] == TEAM]
    assert manifests[-1] == str(team.digest)


def test_without_a_hint_or_a_cache_every_missing_blob_is_uploaded() -> None:
    src, dst = FakeRegistry("test.example"), FakeRegistry("staging.example")
    base, team = _base_and_team(src)
    copy_image(src, BASE, dst, BASE, base.digest)
    stats = copy_image(src, TEAM, dst, TEAM, team.digest)
    assert (stats.blobs_mounted, stats.blobs_copied, dst.mounts) == (0, 6, 0)


def test_the_cache_learns_from_every_copy_and_the_next_copy_mounts_from_there(cache: BlobLocations) -> None:
    src, dst = FakeRegistry("test.example"), FakeRegistry("staging.example")
    base, team = _base_and_team(src)
    add_signature(src, TEAM, team.digest, "test")
    first = copy_image(src, BASE, dst, BASE, base.digest, cache=cache)
    assert first.blobs_copied == 4
    assert all(cache.where(dst.registry, d) == [BASE] for d in _blobs(src, BASE, base))
    assert all(BASE in cache.where(src.registry, d) for d in _blobs(src, BASE, base))  # the source holds them too

    stats = copy_image(src, TEAM, dst, TEAM, team.digest, cache=cache)  # no hint: the cache knows
    assert (stats.blobs_mounted, stats.blobs_copied) == (2, 4 + 2)  # and the signature's payload and config
    # the same image (and its signature) into a third repository of the target: nothing uploaded at all
    again = copy_image(src, TEAM, dst, "moka/mirror-of-etl", team.digest, cache=cache)
    assert again.blobs_copied == 0 and again.bytes_copied == 0 and again.blobs_mounted == 6 + 2
    assert again.attachments == [f"sha256-{team.digest.hex}.sig"]
    assert dst.get_manifest("moka/mirror-of-etl", str(team.digest)).raw == team.raw


def test_cached_repositories_are_tried_most_recent_first_a_few_then_hints_and_stale_ones_are_forgotten(
        cache: BlobLocations, monkeypatch: pytest.MonkeyPatch) -> None:
    src, dst = FakeRegistry("test.example"), FakeRegistry("staging.example")
    base, team = _base_and_team(src)
    copy_image(src, BASE, dst, BASE, base.digest)
    shared = [d for d in _blobs(src, TEAM, team) if d in _blobs(src, BASE, base)]
    for repo in ("gone-1", "gone-2", "gone-3", "gone-4"):  # seen once, deleted since (oldest first)
        cache.seen(dst.registry, repo, shared)
    tried: list[tuple[str, str]] = []
    real = dst.mount_blob

    def mount(repository: str, digest: Digest, from_repository: str) -> bool:
        tried.append((str(digest), from_repository))
        return real(repository, digest, from_repository)

    monkeypatch.setattr(dst, "mount_blob", mount)

    stats = copy_image(src, TEAM, dst, TEAM, team.digest, mount_from=[BASE, TEAM], cache=cache, workers=1)

    assert stats.blobs_mounted == 2
    for digest in shared:
        assert [frm for d, frm in tried if d == str(digest)] == ["gone-4", "gone-3", "gone-2", BASE]
        assert cache.where(dst.registry, digest) == [TEAM, "gone-1"]  # refused ones forgotten, the target learned
    own = [d for d in _blobs(src, TEAM, team) if d not in shared]
    assert all([frm for d, frm in tried if d == str(o)] == [BASE] for o in own)  # never the target itself


def test_a_mount_the_registry_refuses_with_an_error_falls_back_to_upload(monkeypatch: pytest.MonkeyPatch) -> None:
    src, dst = FakeRegistry("test.example"), FakeRegistry("staging.example")
    base, team = _base_and_team(src)
    copy_image(src, BASE, dst, BASE, base.digest)

    def refuse(repository: str, digest: Digest, from_repository: str) -> bool:
        raise ServiceError(f"{dst.registry}: mount {digest.short} into {repository} failed with HTTP 403: DENIED")

    monkeypatch.setattr(dst, "mount_blob", refuse)
    stats = copy_image(src, TEAM, dst, TEAM, team.digest, mount_from=[BASE])
    assert (stats.blobs_mounted, stats.blobs_copied) == (0, 6)
    assert dst.get_manifest(TEAM, str(team.digest)).raw == team.raw


def test_within_one_registry_the_source_repository_is_tried_first(cache: BlobLocations) -> None:
    reg = FakeRegistry()
    base, _ = _base_and_team(reg)
    cache.seen(reg.registry, "moka/elsewhere", list(_blobs(reg, BASE, base)))
    stats = copy_image(reg, BASE, reg, "moka/copy", base.digest, mount_from=["moka/hint"], cache=cache)
    assert stats.blobs_mounted == 4 and {frm for _, frm, _ in _mounts(reg)} == {BASE}


class _Asking(FakeRegistry):
    """The fake, counting the blobs it was asked whether it holds."""

    def __init__(self, registry: str) -> None:
        super().__init__(registry)
        self.asked: list[Digest] = []

    def blob_exists(self, repository: str, digest: Digest) -> bool:
        self.asked.append(digest)
        return super().blob_exists(repository, digest)


def test_into_a_new_repository_a_mountable_blob_is_mounted_without_asking_first() -> None:
    src = FakeRegistry("test.example")
    base, team = _base_and_team(src)
    results = {}
    for new_target in (False, True):
        dst = _Asking("staging.example")
        copy_image(src, BASE, dst, BASE, base.digest)
        dst.asked.clear()
        stats = copy_image(src, TEAM, dst, TEAM, team.digest, mount_from=[BASE], new_target=new_target)
        mounted = set(_blobs(src, BASE, base)) & set(_blobs(src, TEAM, team))
        results[new_target] = (stats.blobs_mounted, stats.blobs_copied, dst.repositories[TEAM].blobs)
        # asking first costs a request per blob; a new repository is asked only about what must be uploaded
        assert mounted.isdisjoint(dst.asked) == new_target
    assert results[False] == results[True]
