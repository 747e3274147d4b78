"""The build flow's registry side against an in-memory test registry: the index each image gets (`write_index`),
rolling tags moved forward only (`_move_rolling_tags`) and put back for skipped images (`_with_skipped`), and
`build()` end to end over a copy of the repository's declarations, with buildx replaced by a stand-in that
pushes a small single-platform image (as buildx pushes one) and returns its digest. No process, no network.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fakes import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    FakeRegistry,
    push_image,
    push_platform,
)

from moka_images.adapters import buildx, git, maven, wheelhouse
from moka_images.config import os_base
from moka_images.config.jvm import JvmSpec, lock_text, new_lock
from moka_images.config.manifests import load_declarations
from moka_images.config.settings import Settings, load_settings
from moka_images.errors import ConfigError, PlanRefused, ServiceError
from moka_images.models import ALL_PLATFORMS, Digest, Environment, ImageRef, JvmJar, Platform
from moka_images.plan.graph import Action, BuildTag
from moka_images.plan.tags import TagKind, kind_of
from moka_images.stages import build as build_stage
from moka_images.stages import images, planning, registries, repositories

ROOT = Path(__file__).resolve().parents[3]
AMD64, ARM64 = ALL_PLATFORMS
OS = Digest("sha256:" + "a" * 64)
REPO = "moka/spark-3.5"
CREATED = "org.opencontainers.image.created"


# ---- write_index ----------------------------------------------------------------------------------------


def expected_index(reg: FakeRegistry, repo: str, children: Mapping[Platform, Digest], media_type: str) -> bytes:
    entries = []
    for platform, digest in sorted(children.items()):
        child = reg.get_manifest(repo, str(digest))
        entries.append({"mediaType": child.media_type, "size": len(child.raw), "digest": str(digest),
                        "platform": {"architecture": platform.arch, "os": platform.os}})
    return json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": entries}, indent=2).encode()


@pytest.mark.parametrize(("docker", "media_type"), [(False, OCI_INDEX), (True, DOCKER_LIST)])
def test_an_index_is_the_same_bytes_whatever_the_order_of_its_children(docker: bool, media_type: str) -> None:
    reg = FakeRegistry()
    children = {p: push_platform(reg, REPO, p, seed="x", docker=docker) for p in (ARM64, AMD64)}
    one = images.write_index(reg, REPO, "one", [children[ARM64], children[AMD64]])
    other = images.write_index(reg, REPO, "other", [children[AMD64], children[ARM64]])
    assert one == other
    index = reg.get_manifest(REPO, "one")
    assert index.media_type == media_type and index.raw == expected_index(reg, REPO, children, media_type)
    assert index.platforms() == children


def test_docker_children_get_a_docker_list_only_when_all_of_them_are_docker() -> None:
    reg = FakeRegistry()
    mixed = {AMD64: push_platform(reg, REPO, AMD64, seed="x", docker=True), ARM64: push_platform(reg, REPO, ARM64, seed="x")}
    digest = images.write_index(reg, REPO, "mixed", list(mixed.values()))
    index = reg.get_manifest(REPO, str(digest))
    assert index.media_type == OCI_INDEX
    assert [e["mediaType"] for e in index.json["manifests"]] == [DOCKER_MANIFEST, OCI_MANIFEST]


def test_an_index_needs_its_children_in_the_repository() -> None:
    reg = FakeRegistry()
    child = push_platform(reg, "moka/elsewhere", AMD64, seed="x")
    with pytest.raises(ServiceError, match="read manifest moka/spark-3.5:sha256:.* HTTP 404: MANIFEST_UNKNOWN"):
        images.write_index(reg, REPO, "t", [child])
    assert reg.list_tags(REPO) == []


def test_two_manifests_of_one_platform_are_refused_by_name_not_indexed() -> None:
    reg = FakeRegistry()
    one, two = (push_platform(reg, REPO, AMD64, seed=seed) for seed in ("x", "y"))
    with pytest.raises(ConfigError, match=f"two manifests for linux/amd64 in one index of {REPO}:t"):
        images.write_index(reg, REPO, "t", [one, two])
    assert reg.list_tags(REPO) == []


# ---- rolling tags ---------------------------------------------------------------------------------------


def test_rolling_tags_move_forward_only_and_the_own_version_follows_the_build() -> None:
    reg = FakeRegistry()
    ours = push_image(reg, REPO, "1.0.1", seed="ours", created="2025-01-01T00:00:00Z", tags=())
    reg.put_manifest(REPO, str(ours.build), ours.raw, OCI_INDEX)
    rebuilt = push_image(reg, REPO, "1.0.1", seed="later", created="2025-02-01T00:00:00Z")  # same version, later
    moved = build_stage._move_rolling_tags(reg, REPO, "spark-3.5", str(ours.build), ours.digest)
    assert moved == ["1.0.1"]  # {version} names the declarations' build; 1.0 and latest stay on the later build
    assert reg.tags(REPO)["1.0.1"] == ours.digest
    assert reg.tags(REPO)["1.0"] == reg.tags(REPO)["latest"] == rebuilt.digest

    newer = push_image(reg, REPO, "1.1.0", seed="newer", tags=("latest",))
    older = push_image(reg, REPO, "1.0.0", seed="older", tags=("1.0.0-aaaaaaaaaa-bbbbbbbbbb", "1.0"))
    fix = push_image(reg, REPO, "1.0.2", seed="fix", tags=())
    reg.put_manifest(REPO, str(fix.build), fix.raw, OCI_INDEX)
    reg.put_manifest(REPO, "1.1.0-aaaaaaaaaa-bbbbbbbbbb", newer.raw, OCI_INDEX)
    assert build_stage._move_rolling_tags(reg, REPO, "spark-3.5", str(fix.build), fix.digest) == ["1.0.2", "1.0"]
    assert reg.tags(REPO)["latest"] == newer.digest and reg.tags(REPO)["1.0"] == fix.digest != older.digest


# ---- build() end to end -----------------------------------------------------------------------------------


@dataclass
class Build:
    """What the buildx stand-in was asked to build."""

    repository: str
    tag: str
    platform: Platform
    args: dict[str, str]
    labels: dict[str, str]
    files: list[str]
    dockerfile: str


@dataclass
class World:
    settings: Settings
    test: FakeRegistry
    builds: list[Build] = field(default_factory=list)
    ensured: list[str] = field(default_factory=list)
    docker: bool = True  # the engine's docker driver pushes Docker manifests

    def tags(self, image: str) -> dict[str, Digest]:
        return self.test.tags(self.settings.repository(image))


@pytest.fixture
def w(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> World:
    root = tmp_path / "checkout"
    for folder in ("images", "manifests"):
        shutil.copytree(ROOT / folder, root / folder)
    shutil.copy2(ROOT / "moka.yaml", root / "moka.yaml")
    for name in ("MOKA_REPOSITORY_PREFIX", "MOKA_PROFILE", "MOKA_PLATFORMS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MOKA_ROOT", str(root))
    monkeypatch.setenv("MOKA_HOME", str(tmp_path / "home"))
    settings = load_settings(root)
    world = World(settings, FakeRegistry(settings.env(Environment.TEST).registry))
    monkeypatch.setattr(os_base, "read_lock", lambda s: os_base.OsBaseLock("mirror/debian:bookworm", OS.value, {}))
    monkeypatch.setattr(registries, "client", lambda s, env: {Environment.TEST: world.test}[env])
    monkeypatch.setattr(registries, "login_tools", lambda s, env: None)
    monkeypatch.setattr(git, "head_revision", lambda root: "0123456789abcdef")
    monkeypatch.setattr(repositories, "ensure_repository", lambda s, env, repo, protected=None: world.ensured.append(repo))
    house = tmp_path / "wheels"
    house.mkdir()
    (house / "requirements.txt").write_text("")
    monkeypatch.setattr(wheelhouse, "resolve", lambda pins, platform, cache: wheelhouse.Wheelhouse(
        house, house / "requirements.txt", {}))

    def place_jars(jars: list[JvmJar], repository: str, cache: Path, destination: Path, source: str) -> None:
        destination.mkdir(parents=True, exist_ok=True)
        for jar in jars:  # stands in for the bytes Maven Central serves
            (destination / jar.file).write_text(jar.sha256)

    monkeypatch.setattr(maven, "place_jars", place_jars)

    def build_platform(context: Path, platform: Platform, target: ImageRef, *, dockerfile: Path | None = None,
                       build_args: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None,
                       on_line: Any = None) -> Digest:
        assert dockerfile is not None and dockerfile.is_file() and target.tag
        assert target.registry == world.test.registry
        files = sorted(str(p.relative_to(context)) for p in context.rglob("*") if p.is_file())
        world.builds.append(Build(target.repository, target.tag, platform, dict(build_args or {}),
                                  dict(labels or {}), files, dockerfile.read_text()))
        stable = {k: v for k, v in (labels or {}).items() if k != CREATED}  # the same inputs, the same image
        return push_platform(world.test, target.repository, platform, seed=json.dumps(stable, sort_keys=True),
                             docker=world.docker, labels=stable, tag=target.tag)

    monkeypatch.setattr(buildx, "build_platform", build_platform)
    return world


def expected_tags(w: World, built: Mapping[str, Digest]) -> dict[str, str]:
    """Each image's build tag from its declarations and its base's digest (the OS base, or the built base)."""
    graph = planning.graph_of(load_declarations(w.settings.root))
    out = {}
    for node in graph.order:
        base = OS if node.base is None else built[node.base]
        out[node.name] = str(BuildTag.make(node.version, node.own_key, base))
    return out


def test_build_makes_each_platform_then_the_index_then_the_rolling_tags(w: World) -> None:
    result = build_stage.build(w.settings)
    names = ["spark-3.5", "spark-4.0", "data-eng/etl-jobs", "ml-platform/feature-store"]
    assert [(r.image, r.action) for r in result] == [(n, Action.BUILD) for n in names]
    by_name = {r.image: r for r in result}
    assert {n: r.tag for n, r in by_name.items()} == expected_tags(w, {n: r.digest for n, r in by_name.items()})
    assert sorted((b.repository, b.platform.arch) for b in w.builds) == sorted(
        (w.settings.repository(n), p.arch) for n in names for p in ALL_PLATFORMS)
    for r in result:
        repo = w.settings.repository(r.image)
        tags = w.tags(r.image)
        version = BuildTag.parse(r.tag)
        assert version is not None
        minor = version.version.rsplit(".", 1)[0]
        assert tags == {r.tag: r.digest, f"{r.tag}-amd64": r.platforms[AMD64], f"{r.tag}-arm64": r.platforms[ARM64],
                        **dict.fromkeys((version.version, minor, "latest"), r.digest)}
        index = w.test.get_manifest(repo, r.tag)
        assert index.media_type == DOCKER_LIST and index.raw == expected_index(w.test, repo, r.platforms, DOCKER_LIST)
        assert [kind_of(t) for t, _ in w.test.tag_writes(repo)] == [
            TagKind.PLATFORM_BUILD, TagKind.PLATFORM_BUILD, TagKind.BUILD, TagKind.ROLLING, TagKind.ROLLING,
            TagKind.ROLLING]
    # a team image is built on its base's index, as just built; a base image on the pinned OS base
    etl = [b for b in w.builds if b.repository == "moka/data-eng/etl-jobs"]
    assert {b.args["BASE"] for b in etl} == {f"{w.test.registry}/moka/spark-3.5@{by_name['spark-3.5'].digest}"}
    assert {b.args["BASE"] for b in w.builds if b.repository == REPO} == {f"{w.settings.mirror}/debian@{OS}"}
    assert all("Dockerfile" in b.files and "wheels/requirements.txt" in b.files for b in w.builds)
    # each base line gets the JARs of its own lock, and no lock itself
    declarations = load_declarations(w.settings.root)
    for name in ("spark-3.5", "spark-4.0"):
        lock = declarations.get(name).lock
        assert lock is not None and lock.jars
        for b in (b for b in w.builds if b.repository == w.settings.repository(name)):
            assert sorted(f for f in b.files if f.startswith("jars/")) == sorted(f"jars/{j.file}" for j in lock.jars)
            assert not any(f.endswith(".lock") for f in b.files)
    # Only the team image that declares JVM packages copies JARs.
    assert all(("jars/" in b.dockerfile) == b.repository.endswith("/etl-jobs") for b in w.builds
               if "/spark-" not in b.repository)
    assert all(b.labels["dev.moka-images.build-tag"] == b.tag.rsplit("-", 1)[0] for b in w.builds)
    assert sorted(set(w.ensured)) == sorted(w.settings.repository(n) for n in names)


def test_an_oci_engine_gets_oci_indexes(w: World) -> None:
    w.docker = False
    result = build_stage.build(w.settings, images=["spark-4.0"])
    (spark,) = result
    assert w.test.get_manifest("moka/spark-4.0", spark.tag).media_type == OCI_INDEX


def test_a_second_build_skips_everything_and_puts_moved_rolling_tags_back(w: World) -> None:
    first = {r.image: r for r in build_stage.build(w.settings)}
    spark = first["spark-3.5"]
    # another build of 1.1.1 (a branch's inputs) took the rolling tags; `latest` of feature-store was pointed
    # by hand at one of its platform manifests
    branch = push_image(w.test, REPO, "1.1.1", seed="branch")
    feature = first["ml-platform/feature-store"]
    w.test.put_manifest("moka/ml-platform/feature-store", "latest",
                        w.test.get_manifest("moka/ml-platform/feature-store", str(feature.platforms[AMD64])).raw,
                        DOCKER_MANIFEST)
    assert w.tags("spark-3.5")["latest"] == branch.digest
    builds, manifests = len(w.builds), [e for e in w.test.writes if e[0] == "manifest"]

    again = build_stage.build(w.settings)

    assert [(r.image, r.action, r.digest) for r in again] == [(n, Action.SKIP, first[n].digest) for n in first]
    assert [r.platforms for r in again] == [first[n].platforms for n in first]
    assert len(w.builds) == builds and [e for e in w.test.writes if e[0] == "manifest"] == manifests
    assert {t: w.tags("spark-3.5")[t] for t in ("1.1.1", "1.1", "latest")} == dict.fromkeys(
        ("1.1.1", "1.1", "latest"), spark.digest)
    assert w.tags("spark-3.5")[str(branch.build)] == branch.digest  # a build tag is never touched
    assert w.tags("ml-platform/feature-store")["latest"] == feature.digest


def test_a_version_bump_builds_only_that_image_and_moves_its_rolling_tags_forward(w: World) -> None:
    first = {r.image: r for r in build_stage.build(w.settings)}
    manifest = w.settings.root / "manifests/data-eng/etl-jobs.yaml"
    manifest.write_text(manifest.read_text().replace("version: 1.1.0", "version: 1.2.0"))
    second = {r.image: r for r in build_stage.build(w.settings)}
    assert {n: r.action for n, r in second.items()} == {"spark-3.5": Action.SKIP, "spark-4.0": Action.SKIP,
                                                        "data-eng/etl-jobs": Action.BUILD,
                                                        "ml-platform/feature-store": Action.SKIP}
    etl, old = second["data-eng/etl-jobs"], first["data-eng/etl-jobs"]
    assert etl.tag.startswith("1.2.0-") and etl.digest != old.digest
    tags = w.tags("data-eng/etl-jobs")
    assert (tags["1.2.0"], tags["1.2"], tags["latest"]) == (etl.digest, etl.digest, etl.digest)
    assert (tags["1.1.0"], tags["1.1"], tags[old.tag]) == (old.digest, old.digest, old.digest)


def test_a_team_image_with_jvm_packages_gets_its_locked_jars_on_spark_s_classpath(w: World) -> None:
    manifest = w.settings.root / "manifests/data-eng/etl-jobs.yaml"
    manifest.write_text(manifest.read_text().replace("org.apache.spark:spark-avro_2.12:3.5.7", "org.json:json:20231013"))
    spec = JvmSpec(packages=["org.json:json:20231013"])
    json_jar = JvmJar("org.json", "json", "20231013", "json-20231013.jar", "7" * 64)
    (w.settings.root / "manifests/data-eng/etl-jobs.jvm.lock").write_text(
        lock_text(new_lock("data-eng/etl-jobs", spec, "3.5.7", "spark-3.5", [json_jar], [])))
    build_stage.build(w.settings, images=["data-eng/etl-jobs"])
    etl = [b for b in w.builds if b.repository == "moka/data-eng/etl-jobs"]
    assert len(etl) == 2 and all(b.files.count("jars/json-20231013.jar") == 1 for b in etl)
    assert all("COPY --chown=0:0 jars/ /opt/python/lib/python3.11/site-packages/pyspark/jars/\n" in b.dockerfile
               for b in etl)


def test_building_per_platform_then_merging_makes_the_same_indexes_as_one_build(w: World) -> None:
    amd, waiting = build_stage.build_platform(w.settings, AMD64)
    assert sorted(b.image for b in amd) == ["spark-3.5", "spark-4.0"]
    assert waiting == ["data-eng/etl-jobs", "ml-platform/feature-store"]
    with pytest.raises(PlanRefused, match="not built yet: spark-3.5 linux/arm64, spark-4.0 linux/arm64"):
        build_stage.merge(w.settings)
    build_stage.build_platform(w.settings, ARM64)
    merged, waiting = build_stage.merge(w.settings)
    assert [r.image for r in merged if r.action is Action.BUILD] == ["spark-3.5", "spark-4.0"] and len(waiting) == 2
    for platform in ALL_PLATFORMS:
        build_stage.build_platform(w.settings, platform)
    merged, waiting = build_stage.merge(w.settings)
    assert waiting == []
    split = {r.image: r.digest for r in merged}

    one_shot = FakeRegistry(w.test.registry)
    w.test = one_shot
    assert {r.image: r.digest for r in build_stage.build(w.settings)} == split
