"""Smoke results: per job and platform, read from an application's output, compared across platforms. Pure."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from moka_images.models import Digest, ImageRef, Platform
from moka_images.smoke.host_checks import HOST_CHECKS
from moka_images.smoke.suite import RESULT_PREFIX, JobKind, JobSpec, SparkApp

LOG_TAIL_LINES = 40


class Status(Enum):
    """Outcome of one job on one platform."""

    PASSED = "passed"
    FAILED = "failed"  # it ran and gave a wrong answer
    TIMED_OUT = "timed-out"  # killed at its limit
    ERROR = "error"  # it could not run or crashed


@dataclass(frozen=True)
class AppOutput:
    """What a runner observed of one Spark application: exit code, output, wall time, killed at its limit."""

    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False


@dataclass(frozen=True)
class JobResult:
    """One job on one platform. `value` is what is compared across platforms; `info` is not."""

    job: str
    platform: Platform
    status: Status
    seconds: float
    value: Any = None
    message: str | None = None
    log_tail: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether the job gave its checked answer."""
        return self.status is Status.PASSED

    def describe(self) -> str:
        """`linux/arm64: jvm: java not found in image`-style one-liner."""
        return f"{self.platform}: {self.job}: {self.status.value}" + (f": {self.message}" if self.message else "")


@dataclass(frozen=True)
class PlatformRun:
    """Every job on one platform of an index, with the per-platform digest that ran."""

    platform: Platform
    digest: Digest
    jobs: tuple[JobResult, ...]
    app_seconds: Mapping[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether every job passed on this platform."""
        return all(j.passed for j in self.jobs)

    @property
    def seconds(self) -> float:
        """Wall time of this platform's applications."""
        return round(sum(self.app_seconds.values()), 2)


@dataclass(frozen=True)
class Mismatch:
    """A job that passed on several platforms with different answers."""

    job: str
    values: Mapping[Platform, Any]

    def describe(self) -> str:
        """Name the job and each platform's answer."""
        shown = "; ".join(f"{p}: {json.dumps(v, sort_keys=True)[:200]}" for p, v in sorted(self.values.items()))
        return f"{self.job}: platforms disagree: {shown}"


@dataclass(frozen=True)
class SuiteResult:
    """The suite on one image index: per-platform runs and cross-platform mismatches."""

    image: ImageRef
    runs: tuple[PlatformRun, ...]
    mismatches: tuple[Mismatch, ...]
    started: str
    finished: str
    backend: str

    @property
    def passed(self) -> bool:
        """Every job passed everywhere and every platform gave the same answers."""
        return all(r.passed for r in self.runs) and not self.mismatches

    def failures(self) -> list[str]:
        """One line per failed job and per mismatch."""
        lines = [j.describe() for r in self.runs for j in r.jobs if not j.passed]
        return lines + [m.describe() for m in self.mismatches]


# Known causes, checked in order against the driver log; the first match names the failure.
_CAUSES: tuple[tuple[str, str], ...] = (
    (r"exec format error", "a binary in the image is built for another architecture (exec format error)"),
    ((r"JAVA_HOME is not set|java: (command )?not found|bin/java: No such file|"
     r"exec: \"?java\"?: executable file not found"), "java not found in image"),
    (r"UnsupportedClassVersionError", "the image's Java is older than the smoke jar needs (Java 17)"),
    ((r"No module named '?pyspark|cannot import name .* from 'pyspark|"
     r"ImportError: .*pyspark"), "python cannot import pyspark"),
    (r"spark-submit\"?: executable file not found|spark-submit: (command )?not found",
     "spark-submit not found in image"),
    (r"Cannot run program \"python[0-9.]*\"|python[0-9.]*: (command )?not found",
     "Spark cannot start the Python interpreter (PYSPARK_PYTHON or PATH)"),
    (r"Python worker (failed|exited)|PythonException", "a Python worker failed"),
    (r"OutOfMemoryError", "the JVM ran out of memory"),
    (r"ClassNotFoundException: moka\.smoke", "the smoke jar is not on the classpath"),
    (r"no matching manifest for|image with reference .* was found but does not match the specified platform",
     "the image has no variant for this platform"),
    (r"Permission denied", "permission denied inside the image (non-root user?)"),
    (r"Unknown command|Non-spark-on-k8s command provided", "the entrypoint does not understand `driver`"),
)


def classify_cause(log: str) -> str | None:
    """A short, known cause for a failed application's log, or None."""
    for pattern, cause in _CAUSES:
        if re.search(pattern, log):
            return cause
    return None


def log_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a driver log."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def parse_records(stdout: str) -> dict[str, dict[str, Any]]:
    """`MOKA_RESULT {json}` lines by job name; malformed lines are skipped (the job then counts as silent)."""
    found: dict[str, dict[str, Any]] = {}
    for line in stdout.splitlines():
        if not line.startswith(RESULT_PREFIX):
            continue
        try:
            record = json.loads(line[len(RESULT_PREFIX):])
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("job"), str):
            found[record["job"]] = record
    return found


def job_results(app: SparkApp, platform: Platform, out: AppOutput) -> list[JobResult]:
    """Judge each job of an application from what it printed, its exit code and whether it was killed."""
    records = parse_records(out.stdout)
    log = out.stderr + "\n" + out.stdout
    cause = classify_cause(log)
    results = []
    for job in app.jobs:
        record = records.get(job.name)
        own_time = len(app.jobs) > 1 and record is not None and isinstance(record.get("seconds"), (int, float))
        seconds = float(record["seconds"]) if own_time and record else out.seconds
        if record is not None:
            results.append(_from_record(job, platform, record, seconds, out, log, single=len(app.jobs) == 1))
        elif out.timed_out:
            results.append(JobResult(job.name, platform, Status.TIMED_OUT, seconds,
                                     message=f"killed at the application's limit of {app.limit:g}s before it reported",
                                     log_tail=log_tail(log)))
        else:
            why = cause or (f"exited {out.exit_code} without a result" if out.exit_code else "printed no result")
            results.append(JobResult(job.name, platform, Status.ERROR, seconds, message=why, log_tail=log_tail(log)))
    return results


def _from_record(job: JobSpec, platform: Platform, record: dict[str, Any], seconds: float, out: AppOutput,
                 log: str, *, single: bool) -> JobResult:
    info = record.get("info") if isinstance(record.get("info"), dict) else {}
    try:
        status = Status(record.get("status"))
    except ValueError:
        status = Status.ERROR
    message = record.get("error") or None
    if status is Status.PASSED and single and out.timed_out:
        status, message = Status.TIMED_OUT, "reported its result, then hung until killed at its limit"
    elif status is Status.PASSED and single and out.exit_code != 0:
        # An application of one job that reported success and then crashed did not pass.
        status, message = Status.ERROR, f"reported success, then exited {out.exit_code}"
    value = record.get("value")
    if status is Status.PASSED and job.kind is JobKind.PYSPARK and job.name in HOST_CHECKS:
        # Docker keeps the driver's stderr apart; `kubectl logs` gives both streams as one.
        value, problem = HOST_CHECKS[job.name](value, f"{out.stderr}\n{out.stdout}")
        if problem:
            status, message = Status.FAILED, problem
    if job.kind is JobKind.TEAM and status is Status.PASSED:
        status, value, message = _team_outcome(job, (value or {}).get("output") if isinstance(value, dict) else None)
    tail = None if status is Status.PASSED else log_tail(log)
    if message and status is not Status.PASSED and (cause := classify_cause(message)):
        message = f"{cause}: {message}"
    return JobResult(job.name, platform, status, seconds, value, message, tail, info or {})


def _team_outcome(job: JobSpec, output: Any) -> tuple[Status, Any, str | None]:
    """A team script that ran: it passes when it printed the expected text, which is then its value."""
    lines = [str(line) for line in output] if isinstance(output, list) else []
    if not job.expect:
        return Status.PASSED, None, None
    found = next((line.strip() for line in lines if job.expect in line), None)
    if found is None:
        return Status.FAILED, None, f"did not print the expected text {job.expect!r}"
    return Status.PASSED, found, None


def compare(runs: tuple[PlatformRun, ...]) -> tuple[Mismatch, ...]:
    """Jobs that passed on more than one platform but gave different values."""
    by_job: dict[str, dict[Platform, Any]] = {}
    for run in runs:
        for job in run.jobs:
            if job.passed:
                by_job.setdefault(job.job, {})[run.platform] = job.value
    mismatches = []
    for name, values in by_job.items():
        canonical = {json.dumps(v, sort_keys=True) for v in values.values()}
        if len(canonical) > 1:
            mismatches.append(Mismatch(name, values))
    return tuple(mismatches)
