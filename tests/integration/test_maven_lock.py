"""The real `moka-images lock`, Maven and Maven Central: a team image on spark-3.5 declares org.json:json, the
command writes its lock, `check` accepts it, and the JAR fetched as the build fetches it is the one Maven Central
publishes (its sha1 there) with the lock's sha256.

Needs Maven, a JDK, Maven Central and spark-3.5's pyspark wheel (built once from PyPI's sdist, then cached);
not the local stack: it uses no registry and no docker, only a copy of the declarations.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import requests

from moka_images import cli
from moka_images.adapters import maven
from moka_images.config.manifests import load_declarations, read_declarations

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "org.json:json:20231013"
LOCK = "manifests/data-eng/etl-jobs.jvm.lock"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the declarations whose etl-jobs declares org.json:json instead of spark-avro, its lock not yet
    rewritten (the machine's caches are shared)."""
    root = tmp_path / "checkout"
    for folder in ("images", "manifests", "policies", "security"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "moka.yaml", root / "moka.yaml")
    manifest = root / "manifests/data-eng/etl-jobs.yaml"
    text = manifest.read_text()
    assert "org.apache.spark:spark-avro_2.12:3.5.7" in text
    manifest.write_text(text.replace("org.apache.spark:spark-avro_2.12:3.5.7", PACKAGE))
    monkeypatch.setenv("MOKA_ROOT", str(root))
    return root


def test_lock_pins_what_maven_central_publishes(project: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert {p.file for p in read_declarations(project).problems} == {LOCK}  # the lock is out of date
    assert cli.main(["lock", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    # the base lines' locks are up to date: only the team image is resolved
    assert [(r["image"], r["action"]) for r in results] == [
        ("spark-3.5", "up to date"), ("spark-4.0", "up to date"), ("data-eng/etl-jobs", "written")]
    lock = json.loads((project / LOCK).read_text())
    assert {k: lock[k] for k in ("schema", "image", "base", "spark_version", "packages", "exclude", "repository",
                                 "provided_by_base")} == {
        "schema": 1, "image": "data-eng/etl-jobs", "base": "spark-3.5", "spark_version": "3.5.7",
        "packages": [PACKAGE], "exclude": [], "repository": "https://repo1.maven.org/maven2", "provided_by_base": []}
    (jar,) = lock["jars"]
    assert (jar["coordinate"], jar["file"]) == (PACKAGE, "json-20231013.jar")

    declarations = load_declarations(project)  # what check and plan read: no problem left
    etl = declarations.get("data-eng/etl-jobs")
    assert etl.lock is not None
    context = tmp_path / "context"
    maven.place_jars([j.jar for j in etl.lock.jars], etl.lock.repository, tmp_path / "jar-cache", context, LOCK)
    body = (context / "json-20231013.jar").read_bytes()
    assert hashlib.sha256(body).hexdigest() == jar["sha256"]
    published = requests.get(maven.artifact_url(etl.lock.repository, etl.lock.jars[0].jar) + ".sha1", timeout=30)
    published.raise_for_status()
    assert hashlib.sha1(body).hexdigest() == published.text.split()[0]

    assert cli.main(["lock", "data-eng/etl-jobs", "--json"]) == 0  # resolved again: the same lock
    assert [r["action"] for r in json.loads(capsys.readouterr().out)] == ["unchanged"]
