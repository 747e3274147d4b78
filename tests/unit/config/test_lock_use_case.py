"""`moka-images lock` over a small project: bases first, what the base ships left out, up-to-date locks left
alone. Maven is replaced by a stand-in that returns a fixed resolution (the real one is
tests/integration/test_maven_lock.py); the pyspark wheel is a small real zip, read by the real adapter."""

from __future__ import annotations

import copy
import io
import json
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from manifest_tree import BASES, TEAM, Tree

from moka_images.adapters import maven, wheelhouse
from moka_images.config.manifests import load_declarations
from moka_images.config.settings import Settings, load_settings
from moka_images.errors import ConfigError, ManifestError
from moka_images.models import JvmJar, Platform
from moka_images.stages import locking

ROOT = Path(__file__).resolve().parents[3]
AWS = "org.apache.hadoop:hadoop-aws:3.3.4"
AVRO = "org.apache.spark:spark-avro_2.12:3.5.7"


def jar(coordinate: str) -> JvmJar:
    group, artifact, version = coordinate.split(":")
    return JvmJar(group, artifact, version, f"{artifact}-{version}.jar", "0" * 64)


RESOLVED = {  # what "Maven" resolves for each first package
    AWS: [jar(AWS), jar("com.amazonaws:aws-java-sdk-s3:1.12.262"), jar("com.fasterxml.jackson.core:jackson-core:2.12.7")],
    AVRO: [jar(AVRO), jar("org.tukaani:xz:1.9"), jar(AWS)],
}


@dataclass
class Maven:
    calls: list[tuple[list[str], list[str]]] = field(default_factory=list)

    def resolve(self, packages: Sequence[str], exclude: Sequence[str], repository: str, local: Path) -> list[JvmJar]:
        assert repository == "https://repo1.maven.org/maven2" and local.name == "maven"
        self.calls.append((list(packages), list(exclude)))
        return RESOLVED[packages[0]]


def _wheel(path: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as jar_:
        jar_.writestr("META-INF/maven/com.fasterxml.jackson.core/jackson-core/pom.properties",
                      "groupId=com.fasterxml.jackson.core\nartifactId=jackson-core\nversion=2.15.2\n")
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr("pyspark/jars/jackson-core-2.15.2.jar", inner.getvalue())


@pytest.fixture
def project(tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Tree, Settings, Maven]:
    shutil.copy2(ROOT / "moka.yaml", tree.root / "moka.yaml")
    for name in ("MOKA_PROFILE", "MOKA_PLATFORMS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MOKA_HOME", str(tmp_path / "home"))
    house = tmp_path / "wheels"
    house.mkdir()
    _wheel(house / "pyspark-3.5.7-py2.py3-none-any.whl")
    asked: list[list[str]] = []

    def resolve(pins: list[str], platform: Platform, cache: Path) -> wheelhouse.Wheelhouse:
        asked.append(pins)
        return wheelhouse.Wheelhouse(house, house / "requirements.txt", {"pyspark-3.5.7-py2.py3-none-any.whl": "x"})

    monkeypatch.setattr(wheelhouse, "resolve", resolve)
    fake = Maven()
    monkeypatch.setattr(maven, "resolve", fake.resolve)
    data = copy.deepcopy(BASES)
    data["lines"][0]["jvm"] = {"packages": [AWS], "exclude": ["com.amazonaws:aws-java-sdk-bundle"]}
    tree.bases(data)
    tree.manifest({**TEAM, "jvm": {"packages": [AVRO]}})
    return tree, load_settings(tree.root), fake


def test_bases_are_locked_first_and_what_the_base_ships_is_left_out(project: tuple[Tree, Settings, Maven]) -> None:
    tree, settings, fake = project
    results = locking.lock(settings)
    assert [(r.image, r.path, r.action) for r in results] == [
        ("spark-3.5", "images/spark/jvm-3.5.lock", "written"),
        ("data-eng/etl-jobs", "manifests/data-eng/etl-jobs.jvm.lock", "written")]
    assert fake.calls == [([AWS], ["com.amazonaws:aws-java-sdk-bundle"]), ([AVRO], [])]
    spark, etl = results
    assert spark.jars == ("com.amazonaws:aws-java-sdk-s3:1.12.262", AWS)
    assert spark.provided_by_base == ("com.fasterxml.jackson.core:jackson-core:2.12.7",)  # pyspark's 2.15.2 wins
    assert etl.jars == (AVRO, "org.tukaani:xz:1.9")
    assert etl.provided_by_base == (AWS,)  # the base line's lock has it
    lock = json.loads((tree.root / "manifests/data-eng/etl-jobs.jvm.lock").read_text())
    assert (lock["image"], lock["base"], lock["spark_version"], lock["packages"]) == (
        "data-eng/etl-jobs", "spark-3.5", "3.5.7", [AVRO])
    declarations = load_declarations(tree.root)  # what check and plan read: in step
    assert declarations.get("data-eng/etl-jobs").lock is not None


def test_up_to_date_locks_are_left_alone_and_a_named_image_is_resolved_again(
        project: tuple[Tree, Settings, Maven]) -> None:
    tree, settings, fake = project
    locking.lock(settings)
    fake.calls.clear()
    assert [r.action for r in locking.lock(settings)] == ["up to date", "up to date"]
    assert fake.calls == []
    assert [(r.image, r.action) for r in locking.lock(settings, ["data-eng/etl-jobs"])] == [
        ("data-eng/etl-jobs", "unchanged")]
    tree.manifest({**TEAM, "jvm": {"packages": [AVRO], "exclude": ["org.tukaani:xz"]}})
    fake.calls.clear()
    assert [r.action for r in locking.lock(settings)] == ["up to date", "written"]
    assert fake.calls == [([AVRO], ["org.tukaani:xz"])]


def test_a_team_image_waits_for_its_base_s_lock(project: tuple[Tree, Settings, Maven]) -> None:
    _, settings, _ = project
    with pytest.raises(ConfigError) as caught:
        locking.lock(settings, ["data-eng/etl-jobs"])
    assert "the lock of spark-3.5" in caught.value.message
    assert caught.value.hint == "run `moka-images lock spark-3.5 data-eng/etl-jobs`"


def test_an_image_without_jvm_and_a_manifest_with_problems_are_refused(project: tuple[Tree, Settings, Maven]) -> None:
    tree, settings, _ = project
    with pytest.raises(ConfigError, match="spark-4.0 declares no `jvm` packages"):
        locking.lock(settings, ["spark-4.0"])
    tree.manifest({**TEAM, "jvm": {"packages": [AVRO]}, "version": "one"})
    with pytest.raises(ManifestError) as caught:
        locking.lock(settings)
    assert [p.field for p in caught.value.problems] == ["version"]
