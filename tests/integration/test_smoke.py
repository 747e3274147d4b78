"""The smoke suite for real: Spark in the built images on amd64 and (through qemu) arm64.

Needs the local stack (the session's `stack` fixture fails without it) and the images it builds. The negative
images are built here from the real base: one whose arm64 variant has no Java, one whose arm64 Python cannot
import pyspark; their amd64 variant is the base's own, so only arm64 may fail.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from moka_images.adapters import buildx, run
from moka_images.adapters.registry import RegistryClient
from moka_images.config.settings import Settings
from moka_images.models import Digest, Environment, ImageRef, Platform
from moka_images.smoke.docker_runner import LABEL, DockerRunner
from moka_images.smoke.host_checks import LOG_FIELDS
from moka_images.smoke.jar import build_jar
from moka_images.smoke.report import junit_xml, predicate
from moka_images.smoke.results import Status, job_results
from moka_images.smoke.suite import APP_ID, BUILTIN_JOBS, JAR_NAME, JobKind, JobSpec, payload_files, plan_apps
from moka_images.stages import registries
from moka_images.stages.build import BuiltImage
from moka_images.stages.images import index_platforms
from moka_images.stages.verify import attestations
from moka_images.stages.verify.attestations import AttestationKind
from moka_images.stages.verify.smoke import builtin_jobs, smoke

pytestmark = pytest.mark.integration

AMD, ARM = Platform("linux", "amd64"), Platform("linux", "arm64")
TEST = Environment.TEST
# "A few minutes" for one image on both platforms on a 2-core machine, arm64 under qemu.
SUITE_BUDGET_SECONDS = 480


@pytest.fixture(scope="module")
def client(stack: Settings) -> RegistryClient:
    """The test registry, with docker, buildx and cosign logged in to it."""
    registries.login_tools(stack, TEST)
    return registries.client(stack, TEST)


def base_image(settings: Settings, built: dict[str, BuiltImage], line: str) -> ImageRef:
    """The Spark base image `line` as the session built it, pinned to its index digest."""
    return ImageRef(settings.env(TEST).registry, settings.repository(line), digest=built[line].digest)


@pytest.mark.parametrize("line", ["spark-3.5", "spark-4.0"])
def test_suite_passes_on_both_platforms(stack: Settings, built: dict[str, BuiltImage], client: RegistryClient,
                                        line: str) -> None:
    image = base_image(stack, built, line)
    jobs = builtin_jobs(stack)
    assert "s3a" in {j.name for j in jobs}, "the local profile names a bucket in moto's S3"
    start = time.monotonic()
    result = smoke(stack, TEST, image, jobs)
    elapsed = time.monotonic() - start
    assert result.passed, "\n".join(result.failures())
    assert [r.platform for r in result.runs] == [AMD, ARM]
    for platform_run in result.runs:
        assert {j.job for j in platform_run.jobs} == {j.name for j in jobs}
        # The jobs really ran on the platform's own architecture (qemu for arm64), with the image's Spark.
        jvm = next(j for j in platform_run.jobs if j.job == "jvm")
        assert jvm.info["arch"] == {"amd64": "amd64", "arm64": "aarch64"}[platform_run.platform.arch]
        assert jvm.info["spark"].startswith(line.removeprefix("spark-"))
        # What EKS needs, on each platform: S3A through the magic committer, hadoop-aws at the client's version,
        # both metrics endpoints, JSON log lines that carry the app id a driver pod's properties give.
        values = {j.job: j.value for j in platform_run.jobs}
        assert values["s3a"]["committer"] == "magic"
        assert values["classpath"]["hadoop"] == {"spark-3.5": "3.3.4", "spark-4.0": "3.4.1"}[line]
        assert values["metrics"]["executor_metrics"] and "jvm" in values["metrics"]["driver_sources"]
        assert values["json_logs"] == {"fields": sorted(LOG_FIELDS), "app_id": APP_ID}
    assert result.mismatches == ()
    doc = predicate(result)
    assert doc["image"]["digest"] == str(image.digest) and doc["passed"]
    assert {p["digest"] for p in doc["platforms"]} == set(map(str, index_platforms(client, image)[1].values()))
    root = ET.fromstring(junit_xml(result))
    # A testcase per job on each platform, and one per job in the cross-platform comparison.
    assert root.get("failures") == "0" and root.get("errors") == "0" and int(root.get("tests") or 0) == 3 * len(jobs)
    assert elapsed < SUITE_BUDGET_SECONDS, f"suite took {elapsed:.0f}s"
    # Attested as the pipeline does, so that later tests (the end-to-end promotion) reuse this run; read back
    # and verified with the test key.
    attestations.attest(stack, TEST, image, AttestationKind.SMOKE, doc, replace=True)
    (found,) = attestations.read_attestations(stack, TEST, image, AttestationKind.SMOKE, trusted=[TEST])
    assert found.predicate["passed"] and found.predicate["image"]["digest"] == str(image.digest)


NO_JAVA = """\
FROM {base}
USER root
RUN rm -rf "$JAVA_HOME" /usr/lib/jvm /usr/bin/java /etc/alternatives/java
USER 185
"""
# pyspark's Python files (and the zip spark-submit puts on PYTHONPATH) gone, jars and bin/ kept:
# spark-submit and the JVM job still work, `from pyspark.sql import SparkSession` does not.
NO_PYSPARK = """\
FROM {base}
USER root
RUN find "$SPARK_HOME" -name '*.py' -delete && rm -f "$SPARK_HOME/python/lib/pyspark.zip" \\
 && find "$SPARK_HOME" -name __pycache__ -prune -exec rm -rf {{}} +
USER 185
"""


def broken_index(settings: Settings, client: RegistryClient, base: ImageRef, name: str, dockerfile: str,
                 tmp_path: Path) -> ImageRef:
    """An index in scratch-smoke/<name>: the base's amd64 variant as is, arm64 rebuilt from `dockerfile`."""
    per_arch = index_platforms(client, base)[1]
    repo = f"scratch-smoke/{name}"
    context = tmp_path / name
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile.format(base=base.with_digest(per_arch[ARM])))
    arm = buildx.build_platform(context, ARM, ImageRef(base.registry, repo, "arm64"))
    amd = per_arch[AMD]
    source = client.get_manifest(base.repository, str(amd))
    for blob in source.blobs():
        if not client.mount_blob(repo, blob, base.repository):
            raise AssertionError(f"registry refused to mount {blob} into {repo}")
    client.put_manifest(repo, str(amd), source.raw, source.media_type)
    arm_manifest = client.get_manifest(repo, str(arm))
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": source.media_type, "digest": str(amd), "size": len(source.raw),
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": arm_manifest.media_type, "digest": str(arm), "size": len(arm_manifest.raw),
             "platform": {"os": "linux", "architecture": "arm64"}},
        ],
    }
    raw = json.dumps(index).encode()
    digest = client.put_manifest(repo, "broken", raw, index["mediaType"])
    return ImageRef(base.registry, repo, digest=Digest(str(digest)))


@pytest.mark.parametrize(("name", "dockerfile", "cause", "arm_jobs_failing"), [
    ("spark-no-java", NO_JAVA, "java not found in image", {j.name for j in BUILTIN_JOBS}),
    ("spark-no-pyspark", NO_PYSPARK, "python cannot import pyspark",
     {"dataframe_sql", "python_udf", "parquet", "entrypoint", "classpath", "metrics", "json_logs"}),
])
def test_broken_arm64_variant_fails_on_arm64_only(stack: Settings, built: dict[str, BuiltImage],
                                                  client: RegistryClient, tmp_path: Path, name: str, dockerfile: str,
                                                  cause: str, arm_jobs_failing: set[str]) -> None:
    image = broken_index(stack, client, base_image(stack, built, "spark-3.5"), name, dockerfile, tmp_path)
    result = smoke(stack, TEST, image, BUILTIN_JOBS)
    assert not result.passed
    runs = {r.platform: r for r in result.runs}
    assert runs[AMD].passed, "\n".join(result.failures())
    failed = {j.job: j for j in runs[ARM].jobs if not j.passed}
    assert set(failed) == arm_jobs_failing
    for job in failed.values():
        assert job.status is Status.ERROR and job.message == cause, job.describe()
        assert job.log_tail, "a failure carries the driver log tail"
    assert f"linux/arm64: {min(arm_jobs_failing)}: error: {cause}" in result.failures()
    assert all(line.startswith("linux/arm64: ") for line in result.failures())


def test_job_over_its_own_limit_is_timed_out_and_the_next_still_runs(stack: Settings,
                                                                     built: dict[str, BuiltImage]) -> None:
    image = base_image(stack, built, "spark-3.5")
    jobs = (JobSpec("parquet", JobKind.PYSPARK, 0.05), JobSpec("python_udf", JobKind.PYSPARK, 180))
    result = smoke(stack, TEST, image, jobs, platforms=[AMD])
    assert [r.platform for r in result.runs] == [AMD]
    jobs_by_name = {j.job: j for j in result.runs[0].jobs}
    assert jobs_by_name["parquet"].status is Status.TIMED_OUT, jobs_by_name["parquet"].describe()
    assert jobs_by_name["python_udf"].passed, jobs_by_name["python_udf"].describe()


def test_hung_application_is_killed_at_its_limit(stack: Settings, built: dict[str, BuiltImage],
                                                 client: RegistryClient) -> None:
    amd = base_image(stack, built, "spark-3.5").with_digest(built["spark-3.5"].platforms[AMD])
    runner = DockerRunner()
    runner.prepare(amd, AMD)
    # No start-up allowance and 4s for the JVM job: it cannot even start Spark in time.
    (app,) = [replace(a, startup=0.0) for a in plan_apps((JobSpec("jvm", JobKind.JVM, 4),))]
    jar_bytes = build_jar(amd, AMD, stack.home / "cache" / "smoke")
    start = time.monotonic()
    out = runner.run(app, amd, AMD, {**payload_files(), JAR_NAME: jar_bytes})
    assert out.timed_out and time.monotonic() - start < 30
    (job,) = job_results(app, AMD, out)
    assert job.status is Status.TIMED_OUT and "limit of 4s" in (job.message or "")
    left = run.call(["docker", "ps", "--all", "--quiet", "--filter", f"label={LABEL}={runner.run_id}"], quiet=True)
    assert left.stdout.strip() == "", "the killed container was removed"
