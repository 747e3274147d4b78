"""The harness's bookkeeping across platforms, with a scripted runner standing in for containers."""

from __future__ import annotations

import json
from collections.abc import Mapping

from host_output import DRIVER_STDERR, HOST_VALUES

from moka_images.errors import CommandFailed, ServiceError
from moka_images.models import Digest, ImageRef, Platform
from moka_images.smoke.harness import run_suite
from moka_images.smoke.host_checks import HOST_CHECKS
from moka_images.smoke.results import AppOutput, Status
from moka_images.smoke.suite import (
    BUILTIN_JOBS,
    JAR_NAME,
    PROPERTIES_FILE,
    S3Target,
    SparkApp,
    properties_file,
    s3a_job,
)

AMD, ARM = Platform("linux", "amd64"), Platform("linux", "arm64")
INDEX = ImageRef("127.0.0.1:15001", "moka/spark-3.5", digest=Digest("sha256:" + "0" * 64))
DIGESTS = {AMD: Digest("sha256:" + "a" * 64), ARM: Digest("sha256:" + "b" * 64)}


def passing_output(app: SparkApp, value: object = 1) -> AppOutput:
    """Every job passed with `value`; the host-checked ones with what a healthy driver reports for them."""
    lines = [json.dumps({"job": j.name, "status": "passed", "value": HOST_VALUES.get(j.name, value),
                         "seconds": 1.0}) for j in app.jobs]
    return AppOutput(0, "\n".join("MOKA_RESULT " + line for line in lines), DRIVER_STDERR, 5.0)


class ScriptedRunner:
    name = "scripted"

    def __init__(self, *, unreachable: Platform | None = None, values: Mapping[Platform, object] | None = None) -> None:
        self.unreachable, self.values = unreachable, values or {}
        self.calls: list[tuple[str, str, set[str]]] = []
        self.apps: list[tuple[SparkApp, Mapping[str, bytes]]] = []

    def prepare(self, image: ImageRef, platform: Platform) -> None:
        if platform == self.unreachable:
            raise CommandFailed(["docker", "pull"], 1, "manifest unknown")

    def run(self, app: SparkApp, image: ImageRef, platform: Platform, files: Mapping[str, bytes]) -> AppOutput:
        self.calls.append((app.name, str(image.digest), set(files)))
        self.apps.append((app, files))
        return passing_output(app, self.values.get(platform, 1))


def jar(image: ImageRef, platform: Platform) -> bytes:
    return b"jar"


def test_every_platform_runs_its_own_digest_with_the_jar_only_where_needed() -> None:
    runner = ScriptedRunner()
    result = run_suite(INDEX, DIGESTS, BUILTIN_JOBS, runner, jar)
    assert result.passed and [r.digest for r in result.runs] == [DIGESTS[AMD], DIGESTS[ARM]]
    assert [(name, digest[-1]) for name, digest, _ in runner.calls] == [
        ("pyspark", "a"), ("jvm", "a"), ("pyspark", "b"), ("jvm", "b")]
    assert [JAR_NAME in files for _, _, files in runner.calls] == [False, True, False, True]
    # The driver pod's properties go only to the application started through the entrypoint.
    assert [PROPERTIES_FILE in files for _, _, files in runner.calls] == [True, False, True, False]
    assert result.runs[0].app_seconds == {"pyspark": 5.0, "jvm": 5.0} and result.backend == "scripted"


def test_an_unreachable_platform_fails_alone_with_the_reason() -> None:
    result = run_suite(INDEX, DIGESTS, BUILTIN_JOBS, ScriptedRunner(unreachable=ARM), jar)
    runs = {r.platform: r for r in result.runs}
    assert runs[AMD].passed and not result.passed
    assert {j.status for j in runs[ARM].jobs} == {Status.ERROR}
    assert len(runs[ARM].jobs) == len(BUILTIN_JOBS)
    assert runs[ARM].jobs[0].message == "cannot fetch the image: `docker pull` exited 1: manifest unknown"


def test_a_jar_that_cannot_be_built_fails_only_the_jvm_job() -> None:
    def broken(image: ImageRef, platform: Platform) -> bytes:
        raise ServiceError("no spark-core jar in $SPARK_HOME/jars of the image")

    result = run_suite(INDEX, {AMD: DIGESTS[AMD]}, BUILTIN_JOBS, ScriptedRunner(), broken)
    failed = [j for j in result.runs[0].jobs if not j.passed]
    assert [j.job for j in failed] == ["jvm"]
    assert failed[0].message == "cannot run jvm: no spark-core jar in $SPARK_HOME/jars of the image"


def test_different_answers_on_two_platforms_fail_the_suite() -> None:
    result = run_suite(INDEX, DIGESTS, BUILTIN_JOBS, ScriptedRunner(values={AMD: 1, ARM: 2}), jar, workers=2)
    assert all(r.passed for r in result.runs) and not result.passed
    # A host-checked job's compared value is what the host found (the same here), not what the job reported.
    assert {m.job for m in result.mismatches} == {j.name for j in BUILTIN_JOBS} - set(HOST_CHECKS)


def test_the_s3_target_reaches_the_shared_application_and_its_properties_file() -> None:
    target = S3Target("s3a://moka-smoke/p", (("spark.hadoop.fs.s3a.endpoint", "http://127.0.0.1:15080"),),
                      (("AWS_ACCESS_KEY_ID", "k"),), host_network=True)
    runner = ScriptedRunner()
    result = run_suite(INDEX, {AMD: DIGESTS[AMD]}, (*BUILTIN_JOBS, s3a_job(target)), runner, jar, s3=target)
    assert result.passed
    (pyspark, files), (jvm, _) = runner.apps
    assert pyspark.host_network and not jvm.host_network
    assert files[PROPERTIES_FILE] == properties_file(pyspark)
    assert b"spark.hadoop.fs.s3a.endpoint=http://127.0.0.1:15080\n" in files[PROPERTIES_FILE]
