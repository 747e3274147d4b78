"""The build against the real engine and test registry: multi-arch indexes, right arch and Spark version,
nothing rebuilt without a change, only the touched image rebuilt, bases cascading to dependents."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import yaml

from moka_images.adapters import run
from moka_images.config.settings import Settings
from moka_images.models import Environment, Platform
from moka_images.plan.graph import Action
from moka_images.stages import registries
from moka_images.stages.build import BuiltImage, build
from moka_images.stages.planning import compute_plan

pytestmark = pytest.mark.integration

SPARK = {"spark-3.5": "3.5.7", "spark-4.0": "4.0.1"}


def test_every_image_is_a_two_platform_index(built: dict[str, BuiltImage], settings: Settings) -> None:
    assert set(built) >= {"spark-3.5", "spark-4.0", "data-eng/etl-jobs", "ml-platform/feature-store"}
    for name, image in built.items():
        ref = f"{settings.env(Environment.TEST).registry}/{settings.repository(name)}:{image.tag}"
        inspected = run.call(["docker", "buildx", "imagetools", "inspect", ref]).stdout
        assert "Platform:  linux/amd64" in inspected and "Platform:  linux/arm64" in inspected, inspected
        assert set(image.platforms) == {Platform("linux", "amd64"), Platform("linux", "arm64")}


@pytest.mark.parametrize("name", ["spark-3.5", "spark-4.0", "data-eng/etl-jobs", "ml-platform/feature-store"])
@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_each_platform_runs_its_arch_and_spark(built: dict[str, BuiltImage], settings: Settings, name: str,
                                               arch: str) -> None:
    image = built[name]
    ref = f"{settings.env(Environment.TEST).registry}/{settings.repository(name)}@{image.platforms[Platform('linux', arch)]}"
    out = run.call(["docker", "run", "--rm", "--network", "host", "--platform", f"linux/{arch}", ref,
                    "bash", "-c", "uname -m; spark-submit --version 2>&1"], timeout=300).stdout
    expected_spark = SPARK.get(name) or SPARK["spark-3.5" if name.startswith("data-eng") else "spark-4.0"]
    assert out.splitlines()[0] == Platform("linux", arch).uname
    assert f"version {expected_spark}" in out


def test_rolling_tags_point_at_the_build(built: dict[str, BuiltImage], settings: Settings) -> None:
    client = registries.client(settings, Environment.TEST)
    for name, image in built.items():
        repo = settings.repository(name)
        for tag in (image.version, "latest"):
            assert client.head_manifest(repo, tag) == image.digest, (name, tag)


def test_second_run_rebuilds_nothing_and_puts_moved_rolling_tags_back(built: dict[str, BuiltImage],
                                                                      settings: Settings) -> None:
    client = registries.client(settings, Environment.TEST)
    moved = built["ml-platform/feature-store"]
    repo = settings.repository(moved.image)
    stray = client.get_manifest(repo, str(moved.platforms[Platform("linux", "amd64")]))
    client.put_manifest(repo, moved.version, stray.raw, stray.media_type)  # as another build of it would
    again = build(settings)
    assert {r.image: r.action for r in again} == {name: Action.SKIP for name in built}
    assert {r.image: r.digest for r in again} == {name: image.digest for name, image in built.items()}
    assert client.head_manifest(repo, moved.version) == moved.digest


@pytest.fixture()
def tree(tmp_path: Path, settings: Settings) -> Path:
    """A copy of the project's declarations plus a throw-away team image, to change without touching the repo."""
    for part in ("images", "manifests", "moka.yaml"):
        src = settings.root / part
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / part)
    team = tmp_path / "manifests" / "itest"
    (team / "probe").mkdir(parents=True)
    (team / "probe" / "job.py").write_text("print('probe')\n")
    name = f"probe-{uuid.uuid4().hex[:8]}"
    (team / f"{name}.yaml").write_text(yaml.safe_dump({
        "name": name, "team": "itest", "version": "1.0.0", "base": "spark-3.5", "description": "build test probe",
        "files": [{"src": "probe/job.py", "dest": "probe/job.py"}]}))
    return tmp_path


def test_touching_one_team_image_rebuilds_only_it(tree: Path, built: dict[str, BuiltImage],
                                                   settings: Settings) -> None:
    local = settings.model_copy(update={"root": tree})
    probe = next(p.stem for p in (tree / "manifests" / "itest").glob("probe-*.yaml"))
    first = {r.image: r for r in build(local)}
    assert first[f"itest/{probe}"].action is Action.BUILD
    assert all(r.action is Action.SKIP for name, r in first.items() if name != f"itest/{probe}")

    (tree / "manifests" / "itest" / "probe" / "job.py").write_text("print('probe v2')\n")
    refused = compute_plan(local).decision(f"itest/{probe}")
    assert refused.action is Action.REFUSE and "bump `version`" in refused.reason

    manifest = tree / "manifests" / "itest" / f"{probe}.yaml"
    manifest.write_text(manifest.read_text().replace("version: 1.0.0", "version: 1.0.1"))
    second = {r.image: r for r in build(local)}
    assert second[f"itest/{probe}"].action is Action.BUILD and second[f"itest/{probe}"].version == "1.0.1"
    assert second[f"itest/{probe}"].digest != first[f"itest/{probe}"].digest
    assert all(r.action is Action.SKIP for name, r in second.items() if name != f"itest/{probe}")


def test_bumping_a_base_rebuilds_it_and_its_dependents(tree: Path, built: dict[str, BuiltImage],
                                                       settings: Settings) -> None:
    matrix = tree / "images" / "spark" / "image.yaml"
    doc = yaml.safe_load(matrix.read_text())
    line = next(entry for entry in doc["lines"] if entry["line"] == "3.5")
    major, minor, patch = line["version"].split(".")
    # The version alone: another Spark release would also need the line's JVM lock written again (the locks
    # name the Spark whose JARs won; `check` says so, unit-tested).
    line["version"] = f"{major}.{minor}.{int(patch) + 1}"
    matrix.write_text(yaml.safe_dump(doc))
    plan = compute_plan(settings.model_copy(update={"root": tree}))
    actions = {d.image: d.action for d in plan.decisions}
    probe = next(name for name in actions if name.startswith("itest/"))
    assert {name for name, action in actions.items() if action is Action.BUILD} == {
        "spark-3.5", "data-eng/etl-jobs", probe}
    assert actions["spark-4.0"] is Action.SKIP and actions["ml-platform/feature-store"] is Action.SKIP
    assert "rebuilds in this plan" in plan.decision("data-eng/etl-jobs").reason
    assert plan.decision("data-eng/etl-jobs").pending
