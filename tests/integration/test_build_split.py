"""`build --platform` on one runner per platform, then `build --merge`: the CI shape of a build, for real.

A copy of the declarations with a tiny stand-in for the Spark Dockerfile (so a base builds in seconds) and
one team image on it, under the `scratch-obs-build/` prefix: the base and the team image each take a round of
per-arch builds and a merge, and the result is what a one-shot `build` would have made.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from moka_images.adapters import run
from moka_images.config.settings import Settings
from moka_images.models import Environment
from moka_images.stages import registries

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "moka_images.cli"]
PREFIX = "scratch-obs-build"


@pytest.fixture()
def tree(tmp_path: Path, stack: Settings) -> Path:
    """moka.yaml, one Spark line with a two-line Dockerfile and a nonce, and one team image built on it."""
    shutil.copy2(stack.root / "moka.yaml", tmp_path / "moka.yaml")
    spark = tmp_path / "images" / "spark"
    spark.mkdir(parents=True)
    doc = yaml.safe_load((stack.root / "images" / "spark" / "image.yaml").read_text())
    # New inputs on every run, so new build tags; and a higher version, since versions only go up.
    # No JVM packages either: the two-line Dockerfile copies none, and the line's lock stays behind.
    doc["lines"] = [{**{k: v for k, v in line.items() if k != "jvm"}, "version": f"1.0.{time.time_ns() // 1000}"}
                    for line in doc["lines"] if line["line"] == "3.5"]
    (spark / "image.yaml").write_text(yaml.safe_dump(doc))
    (spark / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nCOPY nonce /etc/moka-nonce\n")
    (spark / "nonce").write_text(uuid.uuid4().hex + "\n")
    team = tmp_path / "manifests" / "itest"
    (team / "probe").mkdir(parents=True)
    (team / "probe" / "job.py").write_text("print('probe')\n")
    (team / "probe.yaml").write_text(yaml.safe_dump({
        "name": "probe", "team": "itest", "version": "1.0.0", "base": "spark-3.5",
        "description": "per-arch build probe", "files": [{"src": "probe/job.py", "dest": "probe/job.py"}]}))
    return tmp_path


def _cli(tree: Path, *args: str, code: int = 0) -> Any:
    env = {**os.environ, "MOKA_ROOT": str(tree), "MOKA_REPOSITORY_PREFIX": PREFIX}
    done = run.call([*CLI, *args], env=env, check=False, timeout=1200)
    assert done.returncode == code, done.stderr[-3000:]
    return json.loads(done.stdout) if "--json" in args and code == 0 else done


def _arch(doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {i["image"]: (i["action"], i["digest"]) for i in doc["images"]}


def test_per_arch_rounds_then_merges_make_the_same_indexes_as_one_build(tree: Path, stack: Settings) -> None:
    client = registries.client(stack, Environment.TEST)
    amd = _cli(tree, "build", "--platform", "linux/amd64", "--json")
    assert amd["platform"] == "linux/amd64" and set(_arch(amd)) == {"spark-3.5"} and amd["waiting"] == ["itest/probe"]
    early = _cli(tree, "build", "--merge", code=6)  # arm64 of the base is not built yet
    assert "not built yet: spark-3.5 linux/arm64" in early.stderr
    arm = _cli(tree, "build", "--platform", "linux/arm64", "--json")
    assert _arch(arm)["spark-3.5"][0] == "build" and arm["waiting"] == ["itest/probe"]
    again = _cli(tree, "build", "--platform", "linux/arm64", "--json")  # a rerun of a runner builds nothing
    assert _arch(again) == {"spark-3.5": ("skip", _arch(arm)["spark-3.5"][1])}

    merged = _cli(tree, "build", "--merge", "--json")
    assert merged["waiting"] == ["itest/probe"]
    (base,) = [i for i in merged["images"] if i["image"] == "spark-3.5"]
    assert base["action"] == "build" and base["platforms"] == {
        "linux/amd64": _arch(amd)["spark-3.5"][1], "linux/arm64": _arch(arm)["spark-3.5"][1]}
    index = client.get_manifest(f"{PREFIX}/spark-3.5", base["digest"])
    assert {str(p): str(d) for p, d in index.platforms().items()} == base["platforms"]
    assert client.head_manifest(f"{PREFIX}/spark-3.5", base["tag"]) is not None

    # Round two: the team image, now that its base has an index.
    for platform in ("linux/amd64", "linux/arm64"):
        doc = _cli(tree, "build", "--platform", platform, "--json")
        assert {i["image"]: i["action"] for i in doc["images"]} == {"itest/probe": "build"} and doc["waiting"] == []
    final = _cli(tree, "build", "--merge", "--json")
    assert final["waiting"] == []
    actions = {i["image"]: i["action"] for i in final["images"]}
    assert actions == {"spark-3.5": "skip", "itest/probe": "build"}
    (probe,) = [i for i in final["images"] if i["image"] == "itest/probe"]
    assert set(probe["platforms"]) == {"linux/amd64", "linux/arm64"}
    assert probe["tag"].split("-")[-1] == base["digest"].removeprefix("sha256:")[:10]  # built on the merged base
    for tag in ("1.0.0", "latest"):
        assert client.head_manifest(f"{PREFIX}/itest/probe", tag) is not None

    # The one-shot build agrees: everything is there already.
    whole = _cli(tree, "build", "--json")
    assert {i["image"]: (i["action"], i["digest"]) for i in whole} == {
        "spark-3.5": ("skip", base["digest"]), "itest/probe": ("skip", probe["digest"])}


def test_a_platform_outside_the_settings_is_refused(tree: Path) -> None:
    env_platforms = {**os.environ, "MOKA_PLATFORMS": "linux/amd64"}
    done = run.call([*CLI, "build", "--platform", "linux/arm64"], check=False,
                    env={**env_platforms, "MOKA_ROOT": str(tree), "MOKA_REPOSITORY_PREFIX": PREFIX})
    assert done.returncode == 2 and "linux/arm64 is not one of the configured platforms" in done.stderr
