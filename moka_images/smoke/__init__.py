"""Spark smoke tests per platform: the built-in suite, the harness, results, and the attestation predicate."""

from .harness import run_suite
from .report import PREDICATE_TYPE, junit_xml, predicate
from .results import JobResult, PlatformRun, Status, SuiteResult
from .suite import BUILTIN_JOBS, JobSpec, team_job

__all__ = ["BUILTIN_JOBS", "PREDICATE_TYPE", "JobResult", "JobSpec", "PlatformRun", "Status", "SuiteResult",
           "junit_xml", "predicate", "run_suite", "team_job"]
