"""Run the smoke suite on every platform of an index through a Runner, and judge it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from moka_images import log
from moka_images.errors import MokaError
from moka_images.models import Digest, ImageRef, Platform
from moka_images.smoke.results import (
    JobResult,
    PlatformRun,
    Status,
    SuiteResult,
    classify_cause,
    compare,
    job_results,
)
from moka_images.smoke.runner import Runner
from moka_images.smoke.suite import (
    JAR_NAME,
    PROPERTIES_FILE,
    JobKind,
    JobSpec,
    S3Target,
    SparkApp,
    payload_files,
    plan_apps,
    properties_file,
)

# Builds the JVM job's jar for an image (per-platform ref).
JarProvider = Callable[[ImageRef, Platform], bytes]


def run_suite(
    index: ImageRef,
    platforms: Mapping[Platform, Digest],
    jobs: tuple[JobSpec, ...],
    runner: Runner,
    jar_provider: JarProvider,
    *,
    workers: int = 1,
    s3: S3Target | None = None,
) -> SuiteResult:
    """Run `jobs` on each platform's digest of `index`; a mismatch between platforms fails the suite."""
    started = _now()
    apps = plan_apps(jobs, s3)
    todo = sorted(platforms.items())
    if workers <= 1:
        # In this thread, so that Ctrl-C reaches the running container (a pool would finish its work first).
        runs = tuple(_run_platform(index, p, d, apps, runner, jar_provider) for p, d in todo)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_run_platform, index, p, d, apps, runner, jar_provider) for p, d in todo]
            runs = tuple(f.result() for f in futures)
    return SuiteResult(index, runs, compare(runs), started, _now(), runner.name)


def _run_platform(index: ImageRef, platform: Platform, digest: Digest, apps: list[SparkApp], runner: Runner,
                  jar_provider: JarProvider) -> PlatformRun:
    image = index.with_digest(digest)
    results: list[JobResult] = []
    seconds: dict[str, float] = {}
    with log.step(f"smoke {platform}", digest=digest.short):
        try:
            runner.prepare(image, platform)
        except MokaError as exc:
            return PlatformRun(platform, digest, tuple(_errors(apps, platform, "cannot fetch the image", exc)))
        files = payload_files()
        for app in apps:
            try:
                app_files = dict(files)
                if any(j.kind is JobKind.JVM for j in app.jobs):
                    app_files[JAR_NAME] = jar_provider(image, platform)
                if app.via_entrypoint:
                    app_files[PROPERTIES_FILE] = properties_file(app)
                output = runner.run(app, image, platform, app_files)
            except MokaError as exc:
                results += _errors([app], platform, f"cannot run {app.name}", exc)
                continue
            seconds[app.name] = output.seconds
            judged = job_results(app, platform, output)
            for job in judged:
                say = log.info if job.passed else log.warn
                say(f"{platform} {job.job}: {job.status.value} in {job.seconds:.1f}s"
                    + (f" ({job.message})" if job.message else ""))
            results += judged
    return PlatformRun(platform, digest, tuple(results), seconds)


def _errors(apps: list[SparkApp], platform: Platform, what: str, exc: MokaError) -> list[JobResult]:
    """Every job of `apps` as an error: the run could not even start them."""
    message = classify_cause(exc.message) or f"{what}: {' '.join(exc.message.split())[:300]}"
    return [JobResult(j.name, platform, Status.ERROR, 0.0, message=message, log_tail=str(exc)[-4000:])
            for app in apps for j in app.jobs]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
