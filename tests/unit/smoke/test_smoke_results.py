"""Judging smoke output: records, failure causes, time-outs, team jobs, cross-platform comparison."""

from __future__ import annotations

import json

import pytest
from host_output import APP_ID, DRIVER_STDERR, HOST_VALUES, SCRAPES

from moka_images.models import Digest, ImageRef, Platform
from moka_images.smoke.host_checks import LOG_FIELDS
from moka_images.smoke.results import (
    AppOutput,
    PlatformRun,
    Status,
    SuiteResult,
    classify_cause,
    compare,
    job_results,
    parse_records,
)
from moka_images.smoke.suite import BUILTIN_JOBS, plan_apps, team_job

AMD, ARM = Platform("linux", "amd64"), Platform("linux", "arm64")
APPS = {a.name: a for a in plan_apps(BUILTIN_JOBS)}


def record(job: str, status: str = "passed", value: object = 1, error: str | None = None, seconds: float = 2.5) -> str:
    return "MOKA_RESULT " + json.dumps({"job": job, "status": status, "value": value, "error": error,
                                        "seconds": seconds, "info": {"arch": "x"}})


def test_parse_records_skips_noise_and_bad_json() -> None:
    out = "\n".join(["INFO spark", record("jvm"), "MOKA_RESULT {not json", "MOKA_RESULT [1]"])
    assert list(parse_records(out)) == ["jvm"]


PYSPARK_JOBS = ["entrypoint", "dataframe_sql", "python_udf", "parquet", "classpath", "metrics", "json_logs"]


def test_pyspark_app_all_passed_uses_each_jobs_own_time() -> None:
    out = "\n".join(record(n, value=HOST_VALUES.get(n, 1), seconds=i + 1.0)
                    for i, n in enumerate(PYSPARK_JOBS))
    results = job_results(APPS["pyspark"], ARM, AppOutput(0, out, DRIVER_STDERR, 40.0))
    assert [(r.job, r.status, r.seconds) for r in results] == [
        (name, Status.PASSED, i + 1.0) for i, name in enumerate(PYSPARK_JOBS)]
    assert results[0].info == {"arch": "x"} and results[0].log_tail is None


def test_a_passed_job_whose_output_fails_its_host_check_is_failed_with_the_reason() -> None:
    scrapes = {**SCRAPES, "/metrics/executors/prometheus": "<html><body>404</body></html>"}
    out = "\n".join([record("metrics", value={"scrapes": scrapes}),
                     record("json_logs", value=HOST_VALUES["json_logs"])])
    results = {r.job: r for r in job_results(APPS["pyspark"], AMD, AppOutput(0, out, DRIVER_STDERR, 30.0))}
    metrics = results["metrics"]
    assert metrics.status is Status.FAILED and metrics.value is None and metrics.log_tail is not None
    assert (metrics.message or "").startswith("a scrape is not Prometheus exposition format")
    # The compared value is the host's finding, not the raw scrape the job reported.
    assert results["json_logs"].passed and results["json_logs"].value == {
        "fields": sorted(LOG_FIELDS), "app_id": APP_ID}


def test_a_wrong_answer_fails_only_that_job_with_its_message_and_log_tail() -> None:
    out = "\n".join([record("entrypoint"), record("dataframe_sql"),
                     record("python_udf", "failed", None, "UDF prefix counts differ"), record("parquet")])
    results = {r.job: r for r in job_results(APPS["pyspark"], AMD, AppOutput(1, out, "driver log line", 30.0))}
    assert results["python_udf"].status is Status.FAILED
    assert results["python_udf"].describe() == "linux/amd64: python_udf: failed: UDF prefix counts differ"
    assert "driver log line" in (results["python_udf"].log_tail or "")
    assert results["parquet"].passed and results["dataframe_sql"].passed


def test_killed_application_reports_unreported_jobs_as_timed_out() -> None:
    out = record("entrypoint") + "\n" + record("dataframe_sql")
    limit = APPS["pyspark"].limit
    results = {r.job: r for r in job_results(APPS["pyspark"], ARM, AppOutput(137, out, "", limit, timed_out=True))}
    assert results["dataframe_sql"].passed
    assert results["python_udf"].status is Status.TIMED_OUT and results["parquet"].status is Status.TIMED_OUT
    assert f"limit of {limit:g}s" in (results["python_udf"].message or "")


def test_in_driver_time_out_is_reported_as_timed_out() -> None:
    out = record("parquet", "timed-out", None, "no answer after 1s; its Spark jobs were cancelled")
    (result,) = [r for r in job_results(APPS["pyspark"], AMD, AppOutput(1, out, "", 9.0)) if r.job == "parquet"]
    assert result.status is Status.TIMED_OUT


JAVA_MISSING = "/opt/python/lib/python3.11/site-packages/pyspark/bin/spark-class: line 71: " \
    "/usr/lib/jvm/java-17-openjdk-arm64/bin/java: No such file or directory"
NO_PYSPARK = "Traceback (most recent call last):\n  File \"/opt/moka-smoke/pyspark_suite.py\", line 141\n" \
    "ModuleNotFoundError: No module named 'pyspark'"


@pytest.mark.parametrize(("log", "cause"), [
    (JAVA_MISSING, "java not found in image"),
    ("/opt/entrypoint.sh: line 3: exec: java: not found", "java not found in image"),
    ("JAVA_HOME is not set", "java not found in image"),
    (NO_PYSPARK, "python cannot import pyspark"),
    ("exec /usr/bin/tini: exec format error", ("a binary in the image is built for another architecture "
                                              "(exec format error)")),
    ("java.lang.UnsupportedClassVersionError: moka/smoke/SmokeJob", ("the image's Java is older than the smoke jar "
                                                                     "needs (Java 17)")),
    ("just an ordinary failure", None),
])
def test_classify_cause(log: str, cause: str | None) -> None:
    assert classify_cause(log) == cause


def test_java_missing_names_platform_job_and_cause() -> None:
    (result,) = job_results(APPS["jvm"], ARM, AppOutput(1, "", JAVA_MISSING, 3.0))
    assert result.status is Status.ERROR
    assert result.describe() == "linux/arm64: jvm: error: java not found in image"
    assert "bin/java: No such file" in (result.log_tail or "")


def test_pyspark_import_failure_fails_every_pyspark_job_with_the_cause() -> None:
    results = job_results(APPS["pyspark"], ARM, AppOutput(1, "", NO_PYSPARK, 5.0))
    assert {r.status for r in results} == {Status.ERROR}
    assert {r.message for r in results} == {"python cannot import pyspark"}


def test_unknown_crash_says_exit_code() -> None:
    (result,) = job_results(APPS["jvm"], AMD, AppOutput(3, "", "boom", 3.0))
    assert result.message == "exited 3 without a result"


def test_single_job_app_that_reports_success_then_crashes_is_an_error() -> None:
    (result,) = job_results(APPS["jvm"], AMD, AppOutput(1, record("jvm"), "", 10.0))
    assert result.status is Status.ERROR and "then exited 1" in (result.message or "")
    (hung,) = job_results(APPS["jvm"], AMD, AppOutput(137, record("jvm"), "", 400.0, timed_out=True))
    assert hung.status is Status.TIMED_OUT


TEAM_APP = plan_apps((team_job("jobs/smoke.py", "rows=42", 60),))[0]


def team_record(output: list[str], status: str = "passed") -> str:
    return record("team", status, {"output": output})


def test_team_job_passes_on_expected_text_and_fails_without_it() -> None:
    (ok,) = job_results(TEAM_APP, AMD, AppOutput(0, team_record(["noise", "result rows=42 ok "]), "", 12.0))
    assert ok.passed and ok.value == "result rows=42 ok"
    (wrong,) = job_results(TEAM_APP, AMD, AppOutput(0, team_record(["rows=41"]), "", 12.0))
    assert wrong.status is Status.FAILED and "rows=42" in (wrong.message or "") and wrong.value is None
    (crashed,) = job_results(TEAM_APP, ARM, AppOutput(1, record("team", "error", None, "the team job exited "
                                                                "with 2"), "", 20.0))
    assert crashed.status is Status.ERROR and crashed.message == "the team job exited with 2"
    (hung,) = job_results(TEAM_APP, ARM, AppOutput(137, "", "", 210.0, timed_out=True))
    assert hung.status is Status.TIMED_OUT


def test_team_job_without_expected_text_passes_when_it_ran() -> None:
    (app,) = plan_apps((team_job("smoke.py", None, 60),))
    (ok,) = job_results(app, AMD, AppOutput(0, team_record(["anything"]), "", 12.0))
    assert ok.passed and ok.value is None


def _run(platform: Platform, values: dict[str, object], failed: tuple[str, ...] = ()) -> PlatformRun:
    out = "\n".join(record(job, "failed" if job in failed else "passed", v) for job, v in values.items())
    app = plan_apps(tuple(j for j in BUILTIN_JOBS if j.name in values))[0]
    return PlatformRun(platform, Digest("sha256:" + "a" * 64), tuple(job_results(app, platform, AppOutput(0, out, "", 1))))


def test_compare_flags_different_answers_only_between_passed_jobs() -> None:
    same = compare((_run(AMD, {"dataframe_sql": [1, 2]}), _run(ARM, {"dataframe_sql": [1, 2]})))
    assert same == ()
    (mismatch,) = compare((_run(AMD, {"dataframe_sql": {"a": 1.0}}), _run(ARM, {"dataframe_sql": {"a": 1.5}})))
    assert mismatch.job == "dataframe_sql" and set(mismatch.values) == {AMD, ARM}
    assert "linux/arm64" in mismatch.describe()
    assert compare((_run(AMD, {"dataframe_sql": 1}), _run(ARM, {"dataframe_sql": 2}, failed=("dataframe_sql",)))) == ()


def test_suite_fails_on_mismatch_even_if_every_job_passed() -> None:
    runs = (_run(AMD, {"dataframe_sql": 1}), _run(ARM, {"dataframe_sql": 2}))
    image = ImageRef("127.0.0.1:15001", "moka/spark-3.5", digest=Digest("sha256:" + "b" * 64))
    result = SuiteResult(image, runs, compare(runs), "t0", "t1", "docker")
    assert all(r.passed for r in runs) and not result.passed
    assert result.failures() == [result.mismatches[0].describe()]
