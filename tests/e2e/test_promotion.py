"""Promotion end to end on the local stack: the real Spark image from test to prod through dev and staging, with
the real gates, and every refusal the issue names, each leaving the target registry exactly as it was.

The Spark image is the one `moka-images build` put in test (moka/spark-3.5); it is mounted into this run's
own repository (`e2e-promote-<run>/spark-3.5`, same registry, same digest, its attestations along), scanned,
signed and smoke-tested there by the pipeline's own phase (results the pipeline attested on moka/spark-3.5 are
reused, else the suite runs), then promoted by real `moka-images` processes.
The refusal cases use small images pushed through the registry API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from promote_support import Pushed, push_image, ready_in_test, snapshot, suite_settings, vulnerable_jar

from moka_images.adapters import run
from moka_images.adapters.copy import copy_image
from moka_images.config.settings import Settings
from moka_images.errors import GateFailed
from moka_images.models import Environment, ImageRef
from moka_images.plan.graph import Action, BuildTag
from moka_images.stages import registries
from moka_images.stages.build import BuiltImage
from moka_images.stages.pipeline import verify_image
from moka_images.stages.verify import attestations
from moka_images.stages.verify.attestations import AttestationKind

pytestmark = pytest.mark.e2e

TEST, DEV, STAGING, PROD = Environment.TEST, Environment.DEV, Environment.STAGING, Environment.PROD
RUN = uuid.uuid4().hex[:8]
PREFIX = f"e2e-promote-{RUN}"  # a fresh repository per run: every promotion below really copies
SPARK = "spark-3.5"


@pytest.fixture(scope="module")
def psettings(stack: Settings) -> Settings:
    """The local profile with this suite's own repository prefix, and every environment's keys."""
    return suite_settings(stack, PREFIX)


def promote(image: str, to: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`moka-images promote IMAGE --to ENV --confirm ...` as a real process."""
    env = {**os.environ, "MOKA_REPOSITORY_PREFIX": PREFIX, "MOKA_ACTOR": f"e2e-{RUN}"}
    return subprocess.run([sys.executable, "-m", "moka_images.cli", "promote", image, "--to", to, "--confirm",
                           *extra], env=env, capture_output=True, text=True, timeout=1800, check=False)


def refused(image: str, to: str, settings: Settings, repository: str, *extra: str) -> str:
    """Promote, expect a refusal, check the target registry did not change; returns what the user saw."""
    target = registries.client(settings, Environment(to))
    before = snapshot(target, repository)
    done = promote(image, to, *extra)
    assert done.returncode == GateFailed.exit_code, done.stdout + done.stderr
    assert snapshot(target, repository) == before, "a refused promotion changed the target registry"
    assert f"nothing was changed in {to}" in done.stderr
    return done.stdout + done.stderr


# ---- the real image, test -> dev -> staging -> prod --------------------------------------------


@pytest.fixture(scope="module")
def spark(stack: Settings, psettings: Settings) -> ImageRef:
    """moka/spark-3.5 as built in test, mounted into this run's repository and made ready by the pipeline."""
    test = registries.client(stack, TEST)
    source = stack.repository(SPARK)
    digest = test.head_manifest(source, "latest")
    if digest is None:
        pytest.fail(f"{stack.env(TEST).registry}/{source}:latest is missing: run `moka-images build` first")
    builds = [t for t in test.list_tags(source) if BuildTag.parse(t) and test.head_manifest(source, t) == digest]
    assert builds, f"{source}:latest has no build tag"
    repository = psettings.repository(SPARK)
    copy_image(test, source, test, repository, digest)
    index = test.get_manifest(repository, str(digest))
    build = BuildTag.parse(builds[0])
    assert build is not None
    for tag in (builds[0], build.version, "latest"):
        test.put_manifest(repository, tag, index.raw, index.media_type)
    outcome = verify_image(psettings, BuiltImage(SPARK, build.version, builds[0], digest, index.platforms(),
                                                  Action.SKIP), datetime.now(UTC).date())
    assert outcome.failed is None, outcome.failed
    return ImageRef(stack.env(TEST).registry, repository, builds[0], digest)


def test_the_spark_image_reaches_prod_byte_for_byte(psettings: Settings, spark: ImageRef) -> None:
    for env in ("dev", "staging"):
        done = promote(f"{SPARK}:{spark.tag}", env)
        assert done.returncode == 0, done.stdout + done.stderr
    out = refused(f"{SPARK}:{spark.tag}", "prod", psettings, spark.repository)
    assert "approval: prod needs a named approver" in out
    done = promote(f"{SPARK}:{spark.tag}", "prod", "--approved-by", "release-manager")
    assert done.returncode == 0, done.stdout + done.stderr

    prod = registries.client(psettings, PROD)
    assert prod.head_manifest(spark.repository, "latest") == spark.digest  # the test index digest, in prod
    for tag in (str(spark.tag), "latest"):
        assert prod.head_manifest(spark.repository, tag) == spark.digest
    pinned = f"{psettings.env(PROD).registry}/{spark.repository}@{spark.digest}"
    registries.login_tools(psettings, PROD)
    verified = subprocess.run([run.require("cosign"), "verify", "--key", psettings.env(PROD).public_key,
                               "--insecure-ignore-tlog=true", "--allow-http-registry", pinned],
                              capture_output=True, text=True, timeout=120, check=False)
    assert verified.returncode == 0, verified.stderr
    in_prod = ImageRef(psettings.env(PROD).registry, spark.repository, digest=spark.digest)
    found = attestations.read_attestations(psettings, PROD, in_prod)
    kinds = {a.kind for a in found}
    assert {AttestationKind.SCAN, AttestationKind.SMOKE, AttestationKind.PROMOTION} <= kinds
    to_prod = [a.predicate for a in found if a.kind is AttestationKind.PROMOTION and a.predicate["to"] == "prod"]
    assert to_prod and to_prod[-1]["approved_by"] == "release-manager" and to_prod[-1]["by"] == f"e2e-{RUN}"
    assert all(g["passed"] for g in to_prod[-1]["gates"])

    again = promote(f"{SPARK}:{spark.tag}", "prod", "--approved-by", "release-manager", "--json")
    assert again.returncode == 0 and '"outcome": "noop"' in again.stdout

    # status, verified in-process: every environment serves the digest, signed, with its evidence
    shown = subprocess.run([sys.executable, "-m", "moka_images.cli", "status", SPARK, "--json"], timeout=300,
                           env={**os.environ, "MOKA_REPOSITORY_PREFIX": PREFIX}, capture_output=True, text=True,
                           check=False)
    assert shown.returncode == 0, shown.stderr
    (row,) = json.loads(shown.stdout)
    cells = {c["env"]: c for c in row["environments"]}
    for env in ("test", "dev", "staging", "prod"):
        cell = cells[env]
        assert (cell["digest"], cell["signed"], cell["smoke"]) == (str(spark.digest), True, "passed"), cell
        assert cell["scan"].startswith("allowed"), cell
    assert cells["prod"]["promoted"]["approved_by"] == "release-manager" and cells["prod"]["promoted"]["from"] == "staging"
    assert row["notes"] == [] or all(not n.startswith("pending") for n in row["notes"]), row["notes"]


# ---- refusals ----------------------------------------------------------------------------------


def _image(settings: Settings, name: str, version: str = "1.0.0", **kw: object) -> tuple[str, Pushed]:
    repository = settings.repository(f"{name}-{RUN}")
    pushed = push_image(registries.client(settings, TEST), repository, version, seed=f"{name}-{RUN}", **kw)
    return f"{name}-{RUN}:{pushed.build}", pushed


def test_an_unsigned_image_is_refused(psettings: Settings) -> None:
    spec, image = _image(psettings, "unsigned")
    ready_in_test(psettings, image, sign=False)
    out = refused(spec, "dev", psettings, image.repository)
    assert "signature: no signature" in out and "verifies with test" in out


def test_an_image_signed_with_another_key_is_refused_for_its_signature_first_and_nothing_of_it_runs(
        psettings: Settings) -> None:
    spec, image = _image(psettings, "otherkey")
    ready_in_test(psettings, image, key_env=STAGING, smoke=False)
    out = refused(spec, "dev", psettings, image.repository)
    problems = [line.strip() for line in out.splitlines() if line.startswith("  - ")]
    assert problems[0].startswith("- signature: no signature") and "verifies with test" in out
    assert not any(p.startswith(("- scan", "- smoke")) for p in problems)  # an untrusted image's evidence is not read
    assert "running the suite" not in out and "docker" not in out  # and nothing of it runs


def test_a_dry_run_without_an_attested_smoke_result_runs_nothing_and_says_how_to_get_one(
        psettings: Settings) -> None:
    spec, image = _image(psettings, "nosmoke")
    ready_in_test(psettings, image, smoke=False)
    env = {**os.environ, "MOKA_REPOSITORY_PREFIX": PREFIX}
    done = subprocess.run([sys.executable, "-m", "moka_images.cli", "promote", spec, "--to", "dev"], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == GateFailed.exit_code, out
    assert f"no smoke result attested for {image.digest.short}" in out and "moka-images smoke" in out
    assert "running the suite" not in out


def test_an_image_whose_scan_fails_the_target_policy_is_refused(psettings: Settings) -> None:
    # A fixable HIGH finding: dev accepts it, staging does not.
    spec, image = _image(psettings, "highcve", extra={"opt/app/lib/moka-test-lib-1.0.0.jar": vulnerable_jar()})
    ready_in_test(psettings, image)
    assert promote(spec, "dev").returncode == 0
    out = refused(spec, "staging", psettings, image.repository)
    assert "scan: blocked by staging policy" in out and "CVE-2099-0100" in out


def test_a_pre_release_is_refused_at_prod(psettings: Settings) -> None:
    spec, image = _image(psettings, "prerelease", "1.1.0-rc.1")
    ready_in_test(psettings, image)
    for env in ("dev", "staging"):
        done = promote(spec, env)
        assert done.returncode == 0, done.stdout + done.stderr
    out = refused(spec, "prod", psettings, image.repository, "--approved-by", "release-manager")
    assert "1.1.0-rc.1 is a pre-release; only final versions reach prod" in out


def test_a_build_tag_already_pointing_elsewhere_is_refused(psettings: Settings) -> None:
    spec, image = _image(psettings, "tagtaken")
    ready_in_test(psettings, image)
    squatter = push_image(registries.client(psettings, DEV), image.repository, "1.0.0", seed=f"squat-{RUN}",
                          tags=(str(image.build),))
    out = refused(spec, "dev", psettings, image.repository)
    assert f"build tag {image.build} in dev already points at {squatter.digest}" in out


def test_a_missing_approval_is_refused(psettings: Settings) -> None:
    spec, image = _image(psettings, "approval")
    ready_in_test(psettings, image)
    for env in ("dev", "staging"):
        assert promote(spec, env).returncode == 0
    out = refused(spec, "prod", psettings, image.repository)
    assert "approval: prod needs a named approver: add --approved-by NAME" in out
    done = promote(spec, "prod", "--approved-by", "release-manager")
    assert done.returncode == 0, done.stdout + done.stderr
    assert registries.client(psettings, PROD).head_manifest(image.repository, "latest") == image.digest
