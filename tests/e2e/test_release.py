"""A release end to end on the local stack: a Spark base and the team image on it move by digest from test to
prod as one release, through a plan that is written, shown, then applied exactly, with real `moka-images`
processes, real registries and real cosign.

The two images are the ones the session built in test (moka/spark-3.5 and moka/data-eng/etl-jobs), mounted into
this run's own repositories with their signatures and attestations, and verified there by the pipeline's own
phase (scan results cached by digest, smoke results attested earlier are reused).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from promote_support import push_image, snapshot, suite_settings

from moka_images.adapters.copy import copy_image
from moka_images.config.release import load_plan, load_release
from moka_images.config.settings import Settings
from moka_images.errors import GateFailed
from moka_images.models import Environment
from moka_images.plan.graph import Action, BuildTag
from moka_images.stages import registries
from moka_images.stages.build import BuiltImage
from moka_images.stages.pipeline import release_of, verify_image

pytestmark = pytest.mark.e2e

TEST, DEV, STAGING, PROD = Environment.TEST, Environment.DEV, Environment.STAGING, Environment.PROD
RUN = uuid.uuid4().hex[:8]
PREFIX = f"e2e-release-{RUN}"
BASE, TEAM = "spark-3.5", "data-eng/etl-jobs"


@pytest.fixture(scope="module")
def rsettings(stack: Settings) -> Settings:
    return suite_settings(stack, PREFIX)


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MOKA_REPOSITORY_PREFIX": PREFIX, "MOKA_ACTOR": f"e2e-{RUN}"}
    env.pop("GITHUB_ACTOR", None)
    return subprocess.run([sys.executable, "-m", "moka_images.cli", *argv], env=env, capture_output=True,
                          text=True, timeout=1800, check=False)


@pytest.fixture(scope="module")
def release_file(stack: Settings, rsettings: Settings, built: dict[str, BuiltImage],
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base and the team image as the pipeline leaves them in test, and the release file it writes."""
    test = registries.client(stack, TEST)
    mounted = []
    for name in (BASE, TEAM):
        image = built[name]
        repository = rsettings.repository(name)
        copy_image(test, stack.repository(name), test, repository, image.digest)
        index = test.get_manifest(repository, str(image.digest))
        for tag in (image.tag, image.version, "latest"):
            test.put_manifest(repository, tag, index.raw, index.media_type)
        mounted.append(BuiltImage(name, image.version, image.tag, image.digest, image.platforms, Action.SKIP))
    outcomes = [verify_image(rsettings, image, datetime.now(UTC).date()) for image in mounted]
    assert [o.failed for o in outcomes] == [None, None]
    release = release_of(outcomes)
    assert release is not None
    path = tmp_path_factory.mktemp("release") / "release.json"
    path.write_text(json.dumps(release.to_json(), indent=2))
    return path


def test_a_release_reaches_prod_digest_for_digest_through_approved_plans(rsettings: Settings, release_file: Path,
                                                                          tmp_path: Path) -> None:
    release = load_release(release_file)
    assert [i.name for i in release.images] == [BASE, TEAM]  # bases before the team images on them
    wanted = {i.name: i.digest for i in release.images}

    to_dev = cli("promote", "--release", str(release_file), "--to", "dev", "--confirm")
    assert to_dev.returncode == 0, to_dev.stdout + to_dev.stderr
    dev = registries.client(rsettings, DEV)
    for name, digest in wanted.items():
        assert str(dev.head_manifest(rsettings.repository(name), "latest")) == digest

    plan_file, summary = tmp_path / "plan.json", tmp_path / "plan.md"
    planned = cli("promote", "--release", str(release_file), "--to", "staging", "--plan-out", str(plan_file),
                  "--summary", str(summary))
    assert planned.returncode == 0, planned.stdout + planned.stderr
    plan = load_plan(plan_file)
    assert [(i.image, i.source.rsplit("@", 1)[1], i.outcome) for i in plan.images] == [
        (BASE, wanted[BASE], "copy"), (TEAM, wanted[TEAM], "copy")]
    assert "## Promotion plan: dev -> staging" in summary.read_text()
    staging = registries.client(rsettings, STAGING)
    assert all(staging.head_manifest(rsettings.repository(n), "latest") is None for n in wanted)  # planning moved nothing

    # Someone moves a tag in staging after the plan was made: applying it must refuse and name the tag.
    squatter = push_image(staging, rsettings.repository(TEAM), "0.0.1", seed=f"squat-{RUN}", tags=("latest",))
    before = {n: snapshot(staging, rsettings.repository(n)) for n in wanted}
    stale = cli("promote", "--apply", str(plan_file), "--confirm")
    assert stale.returncode == GateFailed.exit_code, stale.stdout + stale.stderr
    assert f"{TEAM}: tag latest in staging points at {squatter.digest.short}, the plan saw nothing" in stale.stderr
    assert {n: snapshot(staging, rsettings.repository(n)) for n in wanted} == before  # nothing moved

    fresh = cli("promote", "--release", str(release_file), "--to", "staging", "--plan-out", str(plan_file))
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    applied = cli("promote", "--apply", str(plan_file), "--confirm")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    for name, digest in wanted.items():
        assert str(staging.head_manifest(rsettings.repository(name), BuildTag.parse(
            next(i.build_tag for i in release.images if i.name == name)).version)) == digest

    to_prod = cli("promote", "--release", str(release_file), "--to", "prod", "--plan-out", str(plan_file))
    assert to_prod.returncode == 0, to_prod.stdout + to_prod.stderr
    unapproved = cli("promote", "--apply", str(plan_file), "--confirm")
    assert unapproved.returncode == GateFailed.exit_code and "needs a named approver" in unapproved.stderr
    done = cli("promote", "--apply", str(plan_file), "--confirm", "--approved-by", "release-manager")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ignoring an attestation" not in done.stdout + done.stderr  # earlier environments' records are theirs
    prod = registries.client(rsettings, PROD)
    for image in release.images:
        repository = rsettings.repository(image.name)
        assert {str(prod.head_manifest(repository, t)) for t in (image.build_tag, "latest")} == {image.digest}
        index = prod.get_manifest(repository, image.digest)
        assert {str(p): str(d) for p, d in index.platforms().items()} == image.platforms
