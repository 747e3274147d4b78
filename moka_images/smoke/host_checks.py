"""What the host checks of a job that passed inside the image: the parts the image cannot judge itself. Pure.

`metrics`: the job scraped the driver's two Prometheus endpoints while a Spark job ran; here the text is parsed
with prometheus_client's parser (the reference implementation of the exposition format, and already ours) and
must hold driver metrics (the JVM and the scheduler) and per-executor metrics.
`json_logs`: the job logged an error with an exception through log4j; the driver's output must be JSON lines
with the fields a log pipeline keys on, that probe among them, and no plain-text log4j line.
Each check returns the value compared across platforms (free of app ids and timings) or why it failed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

DRIVER_ENDPOINT = "/metrics/prometheus"
EXECUTORS_ENDPOINT = "/metrics/executors/prometheus"
# Driver sources (JvmSource from metrics.properties, the DAG scheduler) as they appear in sample names.
DRIVER_SOURCES = ("jvm", "DAGScheduler", "BlockManager")
EXECUTOR_METRICS = ("metrics_executor_memoryUsed_bytes", "metrics_executor_totalTasks_total")
LOG_FIELDS = ("timestamp", "level", "logger", "thread", "message", "exception", "app_id")
# A log4j line in the default PatternLayout ("yy/MM/dd HH:mm:ss LEVEL logger: message").
_PLAIN_LOG_LINE = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) ")
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$")

Outcome = tuple[Any, str | None]


def check_metrics(value: Any, stderr: str) -> Outcome:
    """The scrapes in the job's value parse, with driver sources and executor metrics present."""
    scrapes = value.get("scrapes") if isinstance(value, dict) else None
    if not isinstance(scrapes, dict) or not all(isinstance(scrapes.get(p), str)
                                                for p in (DRIVER_ENDPOINT, EXECUTORS_ENDPOINT)):
        return None, "the job reported no scrape of the driver's and the executors' endpoints"
    try:
        driver = {s.name for f in text_string_to_metric_families(scrapes[DRIVER_ENDPOINT]) for s in f.samples}
        executors = [s for f in text_string_to_metric_families(scrapes[EXECUTORS_ENDPOINT]) for s in f.samples]
    except ValueError as exc:
        return None, f"a scrape is not Prometheus exposition format: {exc}"
    sources = sorted(src for src in DRIVER_SOURCES if any(f"_driver_{src}_" in name for name in driver))
    found = sorted({s.name for s in executors if s.name in EXECUTOR_METRICS and "executor_id" in s.labels})
    missing = [f"driver {src} metrics" for src in DRIVER_SOURCES if src not in sources]
    missing += [name for name in EXECUTOR_METRICS if name not in found]
    if missing:
        return None, f"the scrape has no {', '.join(missing)}"
    return {"driver_sources": sources, "executor_metrics": found}, None


def check_json_logs(value: Any, stderr: str) -> Outcome:
    """The driver's log lines are JSON with LOG_FIELDS, the probe the job logged among them."""
    probe = value.get("probe") if isinstance(value, dict) else None
    app_id = value.get("app_id") if isinstance(value, dict) else None
    if not probe:
        return None, "the job reported no probe message"
    records = []
    for number, text in enumerate(stderr.splitlines(), 1):
        if _PLAIN_LOG_LINE.match(text):
            return None, f"log line {number} is plain text, not JSON: {text[:160]}"
        if not text.startswith("{"):
            continue  # the JVM's and Python's own prints, not log4j's
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            return None, f"log line {number} starts as JSON but does not parse ({exc.msg}): {text[:160]}"
        if isinstance(record, dict):
            records.append(record)
    if not records:
        return None, "the driver wrote no JSON log line"
    incomplete = [r for r in records if any(not r.get(k) for k in ("timestamp", "level", "logger", "message"))]
    if incomplete:
        return None, f"{len(incomplete)} JSON log lines lack timestamp, level, logger or message: {incomplete[0]}"
    line = next((r for r in records if r.get("message") == probe), None)
    if line is None:
        return None, f"no JSON log line carries the probe {probe!r}"
    problems = [f"no {k}" for k in LOG_FIELDS if not line.get(k)]
    if not _TIMESTAMP.match(str(line.get("timestamp", ""))):
        problems.append(f"timestamp {line.get('timestamp')!r} is not ISO 8601")
    if line.get("level") != "ERROR" or "IllegalStateException" not in str(line.get("exception", "")):
        problems.append("not the ERROR with its exception that was logged")
    if app_id and line.get("app_id") != app_id:
        problems.append(f"app_id {line.get('app_id')!r}, not {app_id!r}")
    if problems:
        return None, f"the probe's JSON log line has {'; '.join(problems)}: {json.dumps(line)[:300]}"
    return {"fields": sorted(k for k in LOG_FIELDS if line.get(k)), "app_id": line["app_id"]}, None


HOST_CHECKS: Mapping[str, Callable[[Any, str], Outcome]] = {"metrics": check_metrics, "json_logs": check_json_logs}
