"""`rescan` on the real test registry, trivy and a DB we publish: an image that was clean becomes blocked when
the DB learns of a flaw in a package it carries, and the finding is reported as new.

The image is the OS base copied from the mirror into `scratch-obs-rescan/osbase`; the DBs go to scratch repositories
in the mirror; scans are cached in a temporary home. Nothing the pipeline uses is touched.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from moka_images.adapters import run
from moka_images.adapters.copy import copy_image
from moka_images.config.settings import Settings, TrivySettings
from moka_images.models import Environment
from moka_images.stages import registries, rescan
from moka_images.stages.verify import dbmirror

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEST = Environment.TEST
PREFIX = "scratch-obs-rescan"
UNRELATED = """vulnerabilities:
  - id: CVE-2099-9900
    severity: CRITICAL
    title: a flaw in a package the image does not have
    affects: [{os: debian 12, package: jq, fixed_version: "1.7.1-99"}]
"""
TAR_FLAW = """  - id: CVE-2099-9901
    severity: CRITICAL
    title: a flaw in tar, which every Debian base carries
    affects: [{os: debian 12, package: tar, fixed_version: "99.0-1"}]
"""


@pytest.fixture(scope="module")
def own(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The stack's settings with a scratch prefix, scratch DB repositories and a fresh scan cache; the OS base
    served in test as scratch-obs-rescan/osbase 1.0.0 (and latest), and one of its platform manifests under a build tag."""
    settings = stack.model_copy(update={
        "home": tmp_path_factory.mktemp("home"), "repository_prefix": PREFIX,
        "trivy": TrivySettings(db_repository=f"{PREFIX}/trivy-db", java_db_repository=f"{PREFIX}/trivy-java-db")})
    mirror, test = registries.mirror(settings), registries.client(settings, TEST)
    digest = mirror.head_manifest(settings.os_base.repository, settings.os_base.tag)
    assert digest is not None, "the OS base is not seeded: `moka-images dev up`"
    repo = f"{PREFIX}/osbase"
    copy_image(mirror, settings.os_base.repository, test, repo, digest)
    index = test.get_manifest(repo, str(digest))
    for tag in ("1.0.0", "1.0", "latest"):
        test.put_manifest(repo, tag, index.raw, index.media_type)
    # A build tag names a build, not what is served: this one (a single platform) must not be rescanned.
    amd64 = index.platforms()[min(index.platforms())]
    single = test.get_manifest(repo, str(amd64))
    # Build tags are immutable (the gate refuses to move one), so this one is derived from what it names.
    test.put_manifest(repo, f"0.9.0-{amd64.hex[:10]}-{amd64.hex[10:20]}", single.raw, single.media_type)
    return settings


def test_an_image_clean_yesterday_is_blocked_after_the_db_learns_of_a_flaw(own: Settings, tmp_path: Path) -> None:
    mirror = registries.mirror(own)
    (tmp_path / "day1.yaml").write_text(UNRELATED)
    dbmirror.mirror_databases(own, mirror, advisories=tmp_path / "day1.yaml")
    (first,) = rescan.rescan(own, TEST)
    assert first.image == "osbase" and first.tags == ("1.0", "1.0.0", "latest")
    assert first.verdict.allowed and first.new is None  # nothing to compare with yet
    assert {str(r.platform) for r in first.reports} == {"linux/amd64", "linux/arm64"}
    assert all(r.os.startswith("debian 12") and r.package_count > 50 for r in first.reports)

    (tmp_path / "day2.yaml").write_text(UNRELATED + TAR_FLAW)
    dbmirror.mirror_databases(own, mirror, advisories=tmp_path / "day2.yaml")
    (second,) = rescan.rescan(own, TEST)
    assert second.ref == first.ref and not second.verdict.allowed
    assert {(f.id, f.package, str(f.platform)) for f in second.verdict.blocking} == {
        ("CVE-2099-9901", "tar", "linux/amd64"), ("CVE-2099-9901", "tar", "linux/arm64")}
    assert second.new == ("CVE-2099-9901 tar (linux/amd64)", "CVE-2099-9901 tar (linux/arm64)")
    assert second.reports[0].db.vuln_digest != first.reports[0].db.vuln_digest

    (third,) = rescan.rescan(own, TEST)  # the same DB again: the same answer, compared with the same earlier DB
    assert third.new == second.new and third.reports == second.reports and not third.verdict.allowed


def test_cli_exits_with_the_gate_code_and_reports_json(own: Settings, tmp_path: Path) -> None:
    # The CLI reads the DB names from moka.yaml, so publish day 2 where they point, in a home of its own.
    env = {**os.environ, "MOKA_ROOT": str(ROOT), "MOKA_HOME": str(tmp_path / "home"),
           "MOKA_REPOSITORY_PREFIX": PREFIX}
    cli = [sys.executable, "-m", "moka_images.cli"]
    done = run.call([*cli, "rescan", "--env", "test", "--json"], env=env, check=False)
    assert done.returncode in (0, 7), done.stderr[-2000:]
    (doc,) = json.loads(done.stdout)
    assert doc["image"] == "osbase" and doc["repository"] == f"{PREFIX}/osbase"
    assert doc["tags"] == ["1.0", "1.0.0", "latest"] and doc["new"] is None
    assert set(doc["counts"]) == {"CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN", "SECRETS"}
    assert doc["allowed"] is (done.returncode == 0)
    if done.returncode == 7:
        assert "now blocked by its policy" in done.stderr
