"""The attestation predicate and the JUnit XML of a smoke result."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from moka_images.models import Digest, ImageRef, Platform
from moka_images.smoke.report import PREDICATE_TYPE, junit_xml, predicate, timing_table
from moka_images.smoke.results import JobResult, Mismatch, PlatformRun, Status, SuiteResult

AMD, ARM = Platform("linux", "amd64"), Platform("linux", "arm64")
INDEX = ImageRef("127.0.0.1:15001", "moka/spark-4.0", digest=Digest("sha256:" + "1" * 64))


def result(arm_jvm: Status = Status.PASSED, mismatch: bool = False) -> SuiteResult:
    amd = PlatformRun(AMD, Digest("sha256:" + "2" * 64), (
        JobResult("jvm", AMD, Status.PASSED, 14.2, {"sum": 5}, info={"java": "17"}),
        JobResult("parquet", AMD, Status.PASSED, 3.1, {"rows": 9}),
    ), {"jvm": 14.2, "pyspark": 20.0})
    arm = PlatformRun(ARM, Digest("sha256:" + "3" * 64), (
        JobResult("jvm", ARM, arm_jvm, 61.0, {"sum": 5} if arm_jvm is Status.PASSED else None,
                  None if arm_jvm is Status.PASSED else "java not found in image",
                  None if arm_jvm is Status.PASSED else "spark-class: java: No such file"),
        JobResult("parquet", ARM, Status.PASSED, 9.0, {"rows": 8 if mismatch else 9}),
    ), {"jvm": 61.0, "pyspark": 70.0})
    mismatches = (Mismatch("parquet", {AMD: {"rows": 9}, ARM: {"rows": 8}}),) if mismatch else ()
    return SuiteResult(INDEX, (amd, arm), mismatches, "2026-01-01T00:00:00+00:00", "2026-01-01T00:03:00+00:00",
                       "docker")


def test_predicate_type_is_the_agreed_constant() -> None:
    assert PREDICATE_TYPE == "https://moka-images.dev/attestations/smoke/v1"


def test_predicate_names_index_and_per_platform_digests_and_is_json() -> None:
    doc = json.loads(json.dumps(predicate(result())))
    assert doc["passed"] is True and doc["image"] == {"name": INDEX.name, "digest": str(INDEX.digest)}
    assert [(p["platform"], p["digest"][-1], p["passed"]) for p in doc["platforms"]] == [
        ("linux/amd64", "2", True), ("linux/arm64", "3", True)]
    assert doc["platforms"][0]["jobs"][0] == {"name": "jvm", "status": "passed", "seconds": 14.2, "value": {"sum": 5},
                                              "message": None, "info": {"java": "17"}, "log_tail": None}
    assert doc["platforms"][1]["seconds"] == 131.0 and doc["failures"] == [] and doc["mismatches"] == []


def test_predicate_of_a_failure_says_which_platform_and_why() -> None:
    doc = predicate(result(arm_jvm=Status.ERROR))
    assert doc["passed"] is False
    assert doc["failures"] == ["linux/arm64: jvm: error: java not found in image"]
    assert [p["passed"] for p in doc["platforms"]] == [True, False]


def test_junit_counts_errors_and_failures_and_carries_the_log_tail() -> None:
    root = ET.fromstring(junit_xml(result(arm_jvm=Status.ERROR, mismatch=True)))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("6", "1", "1")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"smoke linux/amd64", "smoke linux/arm64", "smoke cross-platform"}
    error = suites["smoke linux/arm64"].find("testcase[@name='jvm']/error")
    assert error is not None and error.get("message") == "linux/arm64: jvm: error: java not found in image"
    assert "java: No such file" in (error.text or "")
    failure = suites["smoke cross-platform"].find("testcase[@name='parquet']/failure")
    assert failure is not None and failure.get("type") == "mismatch"
    digest = suites["smoke linux/arm64"].find("properties/property[@name='digest']")
    assert digest is not None and digest.get("value") == "sha256:" + "3" * 64


def test_timed_out_job_is_a_junit_error_of_type_timed_out() -> None:
    root = ET.fromstring(junit_xml(result(arm_jvm=Status.TIMED_OUT)))
    node = root.find("testsuite[@name='smoke linux/arm64']/testcase[@name='jvm']/error")
    assert node is not None and node.get("type") == "timed-out"


def test_timing_table_puts_platforms_side_by_side_per_job() -> None:
    header, rows = timing_table(result(arm_jvm=Status.TIMED_OUT))
    assert header == ["job", "linux/amd64", "linux/arm64"]
    assert rows[0] == ["jvm", "passed 14.2s", "timed-out 61.0s"]
    assert ["spark-submit pyspark", "20.0s", "70.0s"] in rows
    assert rows[-1] == ["platform total", "34.2s", "131.0s"]
