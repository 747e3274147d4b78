"""Smoke results as documents: the attestation predicate (also the `--json` file) and JUnit XML. Pure."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from moka_images.models import SMOKE_TYPE as PREDICATE_TYPE
from moka_images.smoke.results import JobResult, Status, SuiteResult

__all__ = ["PREDICATE_TYPE", "junit_xml", "predicate", "timing_table"]


def predicate(result: SuiteResult) -> dict[str, Any]:
    """The in-toto predicate attached to the index digest; promotion reads `passed` and `image.digest`.

    Shape: {image: {name, digest}, passed, backend, started, finished, failures: [str],
    platforms: [{platform, digest, passed, seconds, apps: {app: seconds},
    jobs: [{name, status, seconds, value, message, info, log_tail}]}], mismatches: [{job, values}]}.
    """
    return {
        "image": {"name": result.image.name, "digest": str(result.image.digest) if result.image.digest else None},
        "passed": result.passed,
        "backend": result.backend,
        "started": result.started,
        "finished": result.finished,
        "failures": result.failures(),
        "platforms": [
            {
                "platform": str(run.platform),
                "digest": str(run.digest),
                "passed": run.passed,
                "seconds": run.seconds,
                "apps": dict(run.app_seconds),
                "jobs": [_job(j) for j in run.jobs],
            }
            for run in result.runs
        ],
        "mismatches": [
            {"job": m.job, "values": {str(p): v for p, v in sorted(m.values.items())}} for m in result.mismatches
        ],
    }


def _job(job: JobResult) -> dict[str, Any]:
    return {
        "name": job.job,
        "status": job.status.value,
        "seconds": round(job.seconds, 2),
        "value": job.value,
        "message": job.message,
        "info": dict(job.info),
        "log_tail": job.log_tail,
    }


def junit_xml(result: SuiteResult) -> str:
    """One testsuite per platform (a testcase per job) plus one for the cross-platform comparison."""
    root = ET.Element("testsuites", name=f"moka-smoke {result.image}", tests="0", failures="0", errors="0")
    for run in result.runs:
        suite = ET.SubElement(root, "testsuite", name=f"smoke {run.platform}", timestamp=result.started,
                              time=f"{run.seconds:.2f}")
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="digest", value=str(run.digest))
        ET.SubElement(props, "property", name="platform", value=str(run.platform))
        for job in run.jobs:
            case = ET.SubElement(suite, "testcase", classname=f"smoke.{run.platform.arch}", name=job.job,
                                 time=f"{job.seconds:.2f}")
            if job.status is Status.FAILED:
                _problem(case, "failure", job.status.value, job)
            elif job.status in (Status.ERROR, Status.TIMED_OUT):
                _problem(case, "error", job.status.value, job)
        _count(suite)
    if len(result.runs) > 1:
        suite = ET.SubElement(root, "testsuite", name="smoke cross-platform", timestamp=result.started, time="0")
        wrong = {m.job: m for m in result.mismatches}
        names = dict.fromkeys(j.job for run in result.runs for j in run.jobs)
        for name in names:
            case = ET.SubElement(suite, "testcase", classname="smoke.cross-platform", name=name, time="0")
            if name in wrong:
                ET.SubElement(case, "failure", type="mismatch", message=wrong[name].describe())
        _count(suite)
    for key in ("tests", "failures", "errors"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in root.findall("testsuite"))))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _problem(case: ET.Element, tag: str, kind: str, job: JobResult) -> None:
    node = ET.SubElement(case, tag, type=kind, message=job.describe())
    node.text = job.log_tail or ""


def _count(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))


def timing_table(result: SuiteResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the printed summary: one row per job, platforms side by side, then per-application
    and per-platform totals (an application's time includes Spark's start, which its jobs' times do not)."""
    header = ["job", *(str(r.platform) for r in result.runs)]
    jobs = list(dict.fromkeys(j.job for r in result.runs for j in r.jobs))
    apps = list(dict.fromkeys(app for r in result.runs for app in r.app_seconds))
    cells = {(r.platform, j.job): f"{j.status.value} {j.seconds:.1f}s" for r in result.runs for j in r.jobs}
    rows = [[job, *(cells.get((r.platform, job), "-") for r in result.runs)] for job in jobs]
    rows += [[f"spark-submit {app}", *(f"{r.app_seconds[app]:.1f}s" if app in r.app_seconds else "-"
                                       for r in result.runs)] for app in apps]
    rows.append(["platform total", *(f"{r.seconds:.1f}s" for r in result.runs)])
    return header, rows
