"""`moka-images pipeline`: the job on merge. plan -> build -> scan -> sign -> smoke -> promote, each phase timed,
every phase idempotent on digests, so a rerun after a failure or a kill picks up where it stopped."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from rich.table import Table

from . import attestations, log, promote, registries, scan, signing
from .attestations import Kind
from .build import BuiltImage, build
from .config.manifests import TeamImage, load_declarations
from .config.policies import Rules
from .config.settings import Settings, load_settings
from .errors import GateFailed
from .models import Environment, ImageRef
from .recipes import team as team_recipe
from .smoke import cli as smoke_cli
from .smoke.report import predicate as smoke_predicate
from .smoke.suite import BUILTIN_JOBS, JobSpec, team_job


@dataclass
class ImageOutcome:
    """What each phase said about one image."""

    image: str
    digest: str
    phases: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    failed: str | None = None


def smoke_jobs(settings: Settings, name: str) -> tuple[JobSpec, ...]:
    """The built-in suite plus the team's own job, baked into the image by the build."""
    image = load_declarations(settings.root).get(name)
    if isinstance(image, TeamImage) and image.manifest.smoke:
        spec = image.manifest.smoke
        relative = team_recipe.SMOKE_PATH.removeprefix(team_recipe.APP_DIR + "/")
        return (*BUILTIN_JOBS, team_job(relative, spec.expect or "", float(spec.timeout_seconds)))
    return BUILTIN_JOBS


@contextmanager
def _phase(outcome: ImageOutcome, name: str) -> Iterator[None]:
    """Time a phase; a gate that says no marks the image failed instead of stopping the other images."""
    start = time.monotonic()
    try:
        with log.step(f"{name} {outcome.image}"):
            yield
    except GateFailed as exc:
        outcome.phases[name], outcome.failed = "FAILED", f"{name}: {exc.message}"
    finally:
        outcome.seconds[name] = round(time.monotonic() - start, 1)


def verify_image(settings: Settings, image: BuiltImage, today: date, rules: Rules | None = None) -> ImageOutcome:
    """Scan, sign and smoke one built image in test, attesting each result on its index digest (the scan judged by
    test's `rules`, read here unless given)."""
    env = Environment.TEST
    ref = ImageRef(settings.env(env).registry, settings.repository(image.image), digest=image.digest)
    outcome = ImageOutcome(image.image, str(image.digest))
    with _phase(outcome, "scan"):
        result = scan.scan_image(settings, registries.client(settings, env), ref, image.image)
        verdict = scan.judge_scan(settings, result, env, today, rules)
        for platform, sbom in result.sboms:
            sbom_doc = {**json.loads(sbom.read_text()), "moka.platform": str(platform)}
            attestations.attest(settings, env, ref, Kind.SBOM, sbom_doc)
        attestations.attest(settings, env, ref, Kind.SCAN, scan.scan_predicate(result, verdict), replace=True)
        outcome.phases["scan"] = "allowed" if verdict.allowed else "BLOCKED"
        if not verdict.allowed:
            raise GateFailed("blocked by " + ", ".join(sorted({f.id for f in verdict.blocking})))
    if outcome.failed:
        return outcome
    with _phase(outcome, "sign"):
        outcome.phases["sign"] = "signed" if signing.sign(settings, env, ref) else "already signed"
    with _phase(outcome, "smoke"):
        attested = [a for a in attestations.read_attestations(settings, env, ref, Kind.SMOKE, trusted=[env])
                    if a.predicate.get("passed")]
        if attested:
            outcome.phases["smoke"] = "passed (attested earlier)"
            return outcome
        suite = smoke_cli.smoke(settings, env, ref, smoke_jobs(settings, image.image))
        smoke_cli.render(suite)
        attestations.attest(settings, env, ref, Kind.SMOKE, smoke_predicate(suite), replace=True)
        outcome.phases["smoke"] = "passed" if suite.passed else "FAILED"
        if not suite.passed:
            raise GateFailed("; ".join(suite.failures()))
    return outcome


def promote_image(settings: Settings, image: BuiltImage, outcome: ImageOutcome, target: Environment) -> None:
    """Promote a verified image from test to `target` by digest (its gates re-read the attestations)."""
    with _phase(outcome, "promote"):
        done = promote.promote(settings, f"{image.image}@{image.digest}", target)
        outcome.phases["promote"] = f"{done.decision.outcome.value} -> {target}"


def run_pipeline(settings: Settings, *, since_rev: str | None = None, images: tuple[str, ...] = (),
                 jobs: int = 2, today: date | None = None,
                 promote_to: Environment | None = Environment.DEV) -> list[ImageOutcome]:
    """Plan and build, then scan, sign and smoke every image in scope, and promote what passed."""
    today = today or datetime.now(UTC).date()
    # Every policy the run needs is read before anything is built, so a broken one stops it at once. (The
    # promotion reads its target's again: promote.promote reads its own.)
    rules = scan.rules_for(settings, Environment.TEST)
    if promote_to is not None:
        scan.rules_for(settings, promote_to)
    with log.step("build"):
        built = build(settings, images=images, since_rev=since_rev, jobs=jobs)
    outcomes = []
    for image in built:
        outcome = verify_image(settings, image, today, rules)
        if promote_to is not None and not outcome.failed:
            promote_image(settings, image, outcome, promote_to)
        outcomes.append(outcome)
    return outcomes


def summary(outcomes: list[ImageOutcome]) -> Table:
    """One row per image: each phase's result and time."""
    table = Table(title="pipeline", title_justify="left")
    for column in ("image", "digest", "scan", "sign", "smoke", "promote"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        cells = [f"{o.phases.get(p, '-')} ({o.seconds[p]}s)" if p in o.seconds else "-" for p in
                 ("scan", "sign", "smoke", "promote")]
        table.add_row(o.image, o.digest[:19] + "…", *cells)
    return table


def register(sub: argparse._SubParsersAction) -> None:
    """Add `pipeline`."""
    parser = sub.add_parser("pipeline", help="the job on merge: plan, build, scan, sign, smoke, promote")
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="only these images (and the bases they need)")
    parser.add_argument("--since", metavar="REV", help="only images whose inputs changed since this revision")
    parser.add_argument("--jobs", type=int, default=2, help="images built at once (default 2)")
    parser.add_argument("--promote-to", default="dev", metavar="ENV",
                        help="where images that pass go (default dev; `none` to stop in test)")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    target = None if args.promote_to == "none" else Environment.parse(args.promote_to)
    outcomes = run_pipeline(load_settings(profile=args.profile), since_rev=args.since, images=tuple(args.images),
                            jobs=args.jobs, promote_to=target)
    if args.json:
        sys.stdout.write(json.dumps([o.__dict__ for o in outcomes], indent=2) + "\n")
    else:
        log.console().print(summary(outcomes))
    failed = [o for o in outcomes if o.failed]
    if failed:
        raise GateFailed("\n".join(f"{o.image}: {o.failed}" for o in failed), "nothing failed was promoted")
    return 0
