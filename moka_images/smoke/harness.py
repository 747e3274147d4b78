"""Run the smoke suite on every platform of an index through a Runner, and judge it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from .. import log
from ..errors import MokaError
from ..models import Digest, ImageRef, Platform
from .results import JobResult, PlatformRun, Status, SuiteResult, classify_cause, compare, job_results
from .runner import Runner
from .suite import JAR_NAME, JobKind, JobSpec, SparkApp, payload_files, plan_apps

# Builds the JVM job's jar for an image (per-platform ref): returns (Spark version, jar bytes).
JarProvider = Callable[[ImageRef, Platform], tuple[str, bytes]]


def run_suite(
    index: ImageRef,
    platforms: Mapping[Platform, Digest],
    jobs: tuple[JobSpec, ...],
    runner: Runner,
    jar_provider: JarProvider,
    *,
    workers: int = 1,
) -> SuiteResult:
    """Run `jobs` on each platform's digest of `index`; a mismatch between platforms fails the suite."""
    started = _now()
    apps = plan_apps(jobs)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(_run_platform, index.with_digest(d), p, apps, runner, jar_provider)
                   for p, d in sorted(platforms.items())]
        runs = tuple(f.result() for f in futures)
    return SuiteResult(index, runs, compare(runs), started, _now(), runner.name)


def _run_platform(image: ImageRef, platform: Platform, apps: list[SparkApp], runner: Runner,
                  jar_provider: JarProvider) -> PlatformRun:
    assert image.digest is not None
    results: list[JobResult] = []
    seconds: dict[str, float] = {}
    with log.step(f"smoke {platform}", digest=image.digest.short):
        try:
            runner.prepare(image, platform)
        except MokaError as exc:
            why = f"cannot fetch the image: {exc.message.splitlines()[0]}"
            failed = [_error(j, platform, classify_cause(exc.message) or why, exc.message) for a in apps for j in a.jobs]
            return PlatformRun(platform, image.digest, tuple(failed))
        files = payload_files()
        for app in apps:
            app_files = dict(files)
            if any(j.kind is JobKind.JVM for j in app.jobs):
                try:
                    app_files[JAR_NAME] = jar_provider(image, platform)[1]
                except MokaError as exc:
                    results += [_error(j, platform, f"cannot build the smoke jar: {exc.message.splitlines()[0]}",
                                       exc.message) for j in app.jobs]
                    continue
            output = runner.run(app, image, platform, app_files)
            seconds[app.name] = output.seconds
            judged = job_results(app, platform, output)
            for job in judged:
                say = log.info if job.passed else log.warn
                say(f"{platform} {job.job}: {job.status.value} in {job.seconds:.1f}s"
                    + (f" ({job.message})" if job.message else ""))
            results += judged
    return PlatformRun(platform, image.digest, tuple(results), seconds)


def _error(job: JobSpec, platform: Platform, message: str, detail: str) -> JobResult:
    return JobResult(job.name, platform, Status.ERROR, 0.0, message=message, log_tail=detail[-4000:])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
