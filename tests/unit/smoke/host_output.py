"""What a healthy driver reports for the host-checked jobs (`metrics`, `json_logs`): Prometheus scrapes as
Spark's PrometheusServlet and PrometheusResource write them, and JSON log lines as the image's
log4j2.properties makes them. Shared by the tests of host_checks, results and the harness."""

from __future__ import annotations

import json
from typing import Any

DRIVER_SCRAPE = (
    'metrics_local_1_driver_jvm_heap_used_Value{type="gauges"} 5\n'
    'metrics_local_1_driver_DAGScheduler_stage_runningStages_Value{type="gauges"} 1\n'
    'metrics_local_1_driver_BlockManager_memory_memUsed_MB_Value{type="gauges"} 0\n'
    'metrics_local_1_driver_LiveListenerBus_numEventsPosted_Count{type="counters"} 42\n'
)
EXECUTORS_SCRAPE = (
    'metrics_executor_memoryUsed_bytes{application_id="a", application_name="moka", executor_id="driver"} 1\n'
    'metrics_executor_totalTasks_total{application_id="a", application_name="moka", executor_id="driver"} 4\n'
)
SCRAPES = {"/metrics/prometheus": DRIVER_SCRAPE, "/metrics/executors/prometheus": EXECUTORS_SCRAPE}

PROBE = "moka-smoke json probe"
APP_ID = "spark-moka-smoke"


def log_line(**fields: Any) -> str:
    """One JSON log line with the image's fields; `fields` replace or add to an INFO line of Spark's."""
    record = {"timestamp": "2026-12-02T10:00:00.123Z", "level": "INFO",
              "logger": "org.apache.spark.SparkContext", "thread": "main",
              "message": "Running Spark version 3.5.3", "exception": "", "app_id": APP_ID, "context": {}}
    return json.dumps({**record, **fields})


def probe_line(**fields: Any) -> str:
    """The line the json_logs job's ERROR becomes, exception and all."""
    return log_line(**{"level": "ERROR", "logger": "moka.smoke", "thread": "json_logs", "message": PROBE,
                       "exception": "java.lang.IllegalStateException: moka-smoke probe exception\n"
                                    "\tat x.y(Y.java:1)",
                       "exception_class": "java.lang.IllegalStateException", **fields})


# A driver's stderr also holds lines that are not log4j's (spark-class's, Python's): the check skips them.
DRIVER_STDERR = "\n".join(['Setting default log level to "WARN".', log_line(), probe_line(),
                           log_line(level="WARN", message="stopping", thread="shutdown-hook-0")])
# The value each host-checked job reports when it passed.
HOST_VALUES: dict[str, Any] = {"metrics": {"scrapes": SCRAPES},
                               "json_logs": {"probe": PROBE, "app_id": APP_ID}}
