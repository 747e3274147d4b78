"""Spark smoke tests per platform: the built-in suite, the harness, results, and the attestation predicate."""

from moka_images.smoke.harness import run_suite
from moka_images.smoke.report import PREDICATE_TYPE, junit_xml, predicate
from moka_images.smoke.results import JobResult, PlatformRun, Status, SuiteResult
from moka_images.smoke.suite import BUILTIN_JOBS, JobSpec, team_job

__all__ = ["BUILTIN_JOBS", "PREDICATE_TYPE", "JobResult", "JobSpec", "PlatformRun", "Status", "SuiteResult",
           "junit_xml", "predicate", "run_suite", "team_job"]
