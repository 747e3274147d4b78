"""What the host judges of the metrics and json_logs jobs: the scrapes and the driver's log lines."""

from __future__ import annotations

import json

import pytest
from host_output import APP_ID, DRIVER_STDERR, EXECUTORS_SCRAPE, PROBE, SCRAPES, log_line, probe_line

from moka_images.smoke.host_checks import (
    DRIVER_ENDPOINT,
    EXECUTORS_ENDPOINT,
    LOG_FIELDS,
    check_json_logs,
    check_metrics,
)

PROBE_VALUE = {"probe": PROBE, "app_id": APP_ID}


def scrapes(**replace: str | None) -> dict[str, object]:
    """The metrics job's value, with endpoints replaced by name (`driver`, `executors`)."""
    paths = {"driver": DRIVER_ENDPOINT, "executors": EXECUTORS_ENDPOINT}
    return {"scrapes": {**SCRAPES, **{paths[k]: v for k, v in replace.items()}}}


def test_a_good_scrape_gives_the_sources_and_metrics_found() -> None:
    value, problem = check_metrics({"scrapes": SCRAPES}, "")
    assert problem is None and value == {
        "driver_sources": ["BlockManager", "DAGScheduler", "jvm"],
        "executor_metrics": ["metrics_executor_memoryUsed_bytes", "metrics_executor_totalTasks_total"]}


def test_a_missing_executor_metric_is_named() -> None:
    only_memory = EXECUTORS_SCRAPE.splitlines()[0]
    value, problem = check_metrics(scrapes(executors=only_memory), "")
    assert value is None and problem == "the scrape has no metrics_executor_totalTasks_total"


def test_an_executor_metric_without_its_executor_id_does_not_count() -> None:
    unlabelled = EXECUTORS_SCRAPE.replace('executor_id="driver"', 'executor="driver"')
    assert check_metrics(scrapes(executors=unlabelled), "")[1] == (
        "the scrape has no metrics_executor_memoryUsed_bytes, metrics_executor_totalTasks_total")


def test_a_driver_without_jvm_metrics_is_named() -> None:
    no_jvm = "\n".join(line for line in SCRAPES[DRIVER_ENDPOINT].splitlines() if "_jvm_" not in line)
    assert check_metrics(scrapes(driver=no_jvm), "")[1] == "the scrape has no driver jvm metrics"


@pytest.mark.parametrize("text", ["<html><body>Error 404</body></html>", 'metrics_x{executor_id=driver} 1'])
def test_unparseable_text_fails_with_the_parsers_reason(text: str) -> None:
    value, problem = check_metrics(scrapes(executors=text), "")
    assert value is None and (problem or "").startswith("a scrape is not Prometheus exposition format: ")


@pytest.mark.parametrize("value", [None, {}, {"scrapes": "text"}, scrapes(executors=None),
                                   {"scrapes": {DRIVER_ENDPOINT: SCRAPES[DRIVER_ENDPOINT]}}])
def test_a_missing_scrape_fails(value: object) -> None:
    assert check_metrics(value, "") == (
        None, "the job reported no scrape of the driver's and the executors' endpoints")


def test_good_json_lines_with_the_probe_pass() -> None:
    value, problem = check_json_logs(PROBE_VALUE, DRIVER_STDERR)
    assert problem is None and value == {"fields": sorted(LOG_FIELDS), "app_id": APP_ID}


def test_the_value_is_free_of_timestamps_and_threads_so_platforms_compare_equal() -> None:
    other = "\n".join([log_line(timestamp="2026-12-03T01:02:03.999Z"),
                       probe_line(timestamp="2026-12-03T01:02:04.000Z", thread="Thread-7")])
    assert check_json_logs(PROBE_VALUE, other) == check_json_logs(PROBE_VALUE, DRIVER_STDERR)
    assert check_json_logs(PROBE_VALUE, other)[1] is None


def test_a_plain_log4j_line_is_refused_naming_the_line() -> None:
    stderr = f"{DRIVER_STDERR}\n24/12/02 10:00:00 WARN Foo: bar"
    value, problem = check_json_logs(PROBE_VALUE, stderr)
    assert value is None and problem == "log line 5 is plain text, not JSON: 24/12/02 10:00:00 WARN Foo: bar"


def test_a_line_that_starts_as_json_but_does_not_parse_is_refused() -> None:
    stderr = f'{log_line()}\n{{"level": "ERROR", "message": "cut\n{probe_line()}'
    value, problem = check_json_logs(PROBE_VALUE, stderr)
    assert value is None and (problem or "").startswith("log line 2 starts as JSON but does not parse")


@pytest.mark.parametrize(("value", "stderr", "problem"), [
    ({"app_id": APP_ID}, DRIVER_STDERR, "the job reported no probe message"),
    (PROBE_VALUE, "Setting default log level", "the driver wrote no JSON log line"),
    (PROBE_VALUE, log_line(), f"no JSON log line carries the probe {PROBE!r}"),
])
def test_a_missing_probe_fails(value: object, stderr: str, problem: str) -> None:
    assert check_json_logs(value, stderr) == (None, problem)


def test_a_probe_under_another_app_id_fails() -> None:
    value, problem = check_json_logs({"probe": PROBE, "app_id": "spark-other"}, DRIVER_STDERR)
    assert value is None and f"app_id {APP_ID!r}, not 'spark-other'" in (problem or "")


@pytest.mark.parametrize(("fields", "says"), [
    ({"exception": ""}, "no exception"),
    ({"level": "WARN"}, "not the ERROR with its exception that was logged"),
    ({"timestamp": "02 Dec 2026 10:00"}, "timestamp '02 Dec 2026 10:00' is not ISO 8601"),
    ({"app_id": ""}, "no app_id"),
])
def test_a_probe_line_short_of_a_field_fails_saying_which(fields: dict[str, str], says: str) -> None:
    value, problem = check_json_logs(PROBE_VALUE, probe_line(**fields))
    assert value is None and says in (problem or "")


def test_json_lines_without_the_basic_fields_fail() -> None:
    bare = json.dumps({"msg": "not our layout"})
    value, problem = check_json_logs(PROBE_VALUE, f"{bare}\n{probe_line()}")
    assert value is None
    assert (problem or "").startswith("1 JSON log lines lack timestamp, level, logger or message")
