"""A team's JVM package for real: locked with Maven on the host, built onto Spark's classpath on both platforms,
listed in the scan's SBOM, and refused by the policy gate when the local advisory DB marks its version
(CVE-2099-0101: org.json before 20240205, CRITICAL with a fix, which test's policy blocks).

Needs the local stack (the session's `built` images: the team image builds on spark-3.5 as the pipeline left it),
Maven and Maven Central for the lock.
"""

from __future__ import annotations

import json
import shutil
from datetime import date

import pytest
import yaml

from moka_images.config.manifests import load_declarations
from moka_images.config.settings import Settings
from moka_images.models import Environment, ImageRef
from moka_images.stages import registries
from moka_images.stages.build import BuiltImage, build
from moka_images.stages.locking import lock
from moka_images.stages.verify import dbmirror, scan

pytestmark = pytest.mark.integration

TEST = Environment.TEST
IMAGE = "jvmtest/json-lib"
PACKAGE = "org.json:json:20231013"


@pytest.fixture(scope="module")
def team_image(stack: Settings, built: dict[str, BuiltImage],
               tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, BuiltImage]:
    """A copy of the project with one more team, whose manifest declares PACKAGE; locked, then built."""
    tree = tmp_path_factory.mktemp("tree")
    for part in ("images", "manifests", "policies", "security", "moka.yaml"):
        src = stack.root / part
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tree / part)
    team, name = IMAGE.split("/")
    (tree / "manifests" / team).mkdir()
    (tree / "manifests" / team / f"{name}.yaml").write_text(yaml.safe_dump({
        "name": name, "team": team, "version": "1.0.0", "base": "spark-3.5",
        "description": "a team image with an old org.json", "jvm": {"packages": [PACKAGE]}}))
    local = stack.model_copy(update={"root": tree})
    (written,) = [r for r in lock(local) if r.image == IMAGE]
    assert written.action == "written"
    results = {r.image: r for r in build(local, images=[IMAGE])}
    assert results["spark-3.5"].digest == built["spark-3.5"].digest, "the team image builds on the session's base"
    return local, results[IMAGE]


def test_the_lock_pins_the_jar_and_the_scan_lists_it_on_each_platform(team_image: tuple[Settings, BuiltImage]) -> None:
    local, image = team_image
    locked = load_declarations(local.root).get(IMAGE).lock
    assert locked is not None and [j.coordinate for j in locked.jars] == [PACKAGE]
    ref = ImageRef(local.env(TEST).registry, local.repository(IMAGE), digest=image.digest)
    result = scan.scan_image(local, registries.client(local, TEST), ref, IMAGE)
    assert {str(p) for p, _ in result.sboms} == set(local.platforms)
    for platform, sbom in result.sboms:
        purls = {c.get("purl", "") for c in json.loads(sbom.read_text())["components"]}
        assert "pkg:maven/org.json/json@20231013" in purls, platform
        # Spark's own JARs are in the SBOM as well: the Java analyzer read the whole classpath.
        assert any(p.startswith("pkg:maven/org.apache.hadoop/hadoop-aws@3.3.4") for p in purls), platform


def test_the_policy_gate_refuses_the_vulnerable_jar_naming_it(team_image: tuple[Settings, BuiltImage]) -> None:
    local, image = team_image
    dbmirror.mirror_databases(local, registries.mirror(local))  # the project's advisories, as `dev up` pushes them
    ref = ImageRef(local.env(TEST).registry, local.repository(IMAGE), digest=image.digest)
    result = scan.scan_image(local, registries.client(local, TEST), ref, IMAGE)
    verdict = scan.judge_scan(local, result, TEST, date.today())
    assert not verdict.allowed
    found = [f for f in verdict.blocking if f.id == "CVE-2099-0101"]
    assert {str(f.platform) for f in found} == set(local.platforms)
    assert all(f.package == "org.json:json" and f.installed_version == "20231013" and f.fixed_version == "20240205"
               for f in found), found
    assert {f.id for f in verdict.blocking} == {"CVE-2099-0101"}, "the base itself passes test's policy"
