"""`moka-images pipeline`: the job on merge. plan -> build -> scan -> sign -> smoke -> promote, each phase timed,
every phase idempotent on digests, so a rerun after a failure or a kill picks up where it stopped."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from moka_images import log
from moka_images.config.policies import Rules
from moka_images.config.release import RELEASE_SCHEMA, Release
from moka_images.config.settings import Settings
from moka_images.errors import GateFailed
from moka_images.models import Environment, ImageRef
from moka_images.smoke.report import predicate as smoke_predicate
from moka_images.smoke.results import SuiteResult
from moka_images.stages import registries
from moka_images.stages.build import BuiltImage, OnPlan, build
from moka_images.stages.promote.apply import promote
from moka_images.stages.verify import attestations, scan, signing, smoke
from moka_images.stages.verify.attestations import AttestationKind


@dataclass
class ImageOutcome:
    """What each phase said about one image."""

    built: BuiltImage
    phases: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    failed: str | None = None

    @property
    def image(self) -> str:
        """The image's name."""
        return self.built.image

    @property
    def digest(self) -> str:
        """Its index digest."""
        return str(self.built.digest)

    def to_json(self) -> dict[str, Any]:
        """Plain data: the image by digest and what each phase said."""
        return {**self.built.to_json(), "phases": self.phases, "seconds": self.seconds, "failed": self.failed}


def release_of(outcomes: Sequence[ImageOutcome]) -> Release | None:
    """The images that passed every phase, by digest, in build order: the release that moves on (None: none did)."""
    passed = [o.built for o in outcomes if not o.failed]
    if not passed:
        return None
    return Release.model_validate({"schema": RELEASE_SCHEMA, "verified_in": Environment.TEST.value, "images": [
        {"name": b.image, "version": b.version, "build_tag": b.tag, "digest": str(b.digest),
         "platforms": {str(p): str(d) for p, d in sorted(b.platforms.items())}} for b in passed]})


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


def verify_image(settings: Settings, image: BuiltImage, today: date, rules: Rules | None = None,
                 on_suite: Callable[[SuiteResult], None] | None = None) -> ImageOutcome:
    """Scan, sign and smoke one built image in test, attesting each result on its index digest (the scan judged by
    test's `rules`, read here unless given)."""
    env = Environment.TEST
    ref = ImageRef(settings.env(env).registry, settings.repository(image.image), digest=image.digest)
    outcome = ImageOutcome(image)
    with _phase(outcome, "scan"):
        result = scan.scan_image(settings, registries.client(settings, env), ref, image.image)
        verdict = scan.judge_scan(settings, result, env, today, rules)
        for platform, sbom in result.sboms:
            sbom_doc = {**json.loads(sbom.read_text()), "moka.platform": str(platform)}
            attestations.attest(settings, env, ref, AttestationKind.SBOM, sbom_doc)
        attestations.attest(settings, env, ref, AttestationKind.SCAN, scan.scan_predicate(result, verdict), replace=True)
        outcome.phases["scan"] = "allowed" if verdict.allowed else "BLOCKED"
        if not verdict.allowed:
            raise GateFailed("blocked by " + ", ".join(sorted({f.id for f in verdict.blocking})))
    if outcome.failed:
        return outcome
    with _phase(outcome, "sign"):
        outcome.phases["sign"] = "signed" if signing.sign(settings, env, ref) else "already signed"
    with _phase(outcome, "smoke"):
        attested = [a for a in attestations.read_attestations(settings, env, ref, AttestationKind.SMOKE, trusted=[env])
                    if a.predicate.get("passed")]
        if attested:
            outcome.phases["smoke"] = "passed (attested earlier)"
            return outcome
        suite = smoke.smoke(settings, env, ref, smoke.jobs_for(settings, image.image))
        if on_suite is not None:
            on_suite(suite)
        attestations.attest(settings, env, ref, AttestationKind.SMOKE, smoke_predicate(suite), replace=True)
        outcome.phases["smoke"] = "passed" if suite.passed else "FAILED"
        if not suite.passed:
            raise GateFailed("; ".join(suite.failures()))
    return outcome


def promote_image(settings: Settings, image: BuiltImage, outcome: ImageOutcome, target: Environment) -> None:
    """Promote a verified image from test to `target` by digest (its gates re-read the attestations)."""
    with _phase(outcome, "promote"):
        done = promote(settings, f"{image.image}@{image.digest}", target)
        outcome.phases["promote"] = f"{done.decision.outcome.value} -> {target}"


def run_pipeline(settings: Settings, *, since_rev: str | None = None, images: tuple[str, ...] = (),
                 jobs: int = 2, today: date | None = None,
                 promote_to: Environment | None = Environment.DEV, on_plan: OnPlan | None = None,
                 on_suite: Callable[[SuiteResult], None] | None = None) -> list[ImageOutcome]:
    """Plan and build, then scan, sign and smoke every image in scope, and promote what passed."""
    today = today or datetime.now(UTC).date()
    # Every policy the run needs is read before anything is built, so a broken one stops it at once. (The
    # promotion reads its target's again: it judges the scan itself.)
    rules = scan.rules_for(settings, Environment.TEST)
    if promote_to is not None:
        scan.rules_for(settings, promote_to)
    with log.step("build"):
        built = build(settings, images=images, since_rev=since_rev, jobs=jobs, on_plan=on_plan)
    outcomes = []
    for image in (b for b in built if b.selected):  # a base built only for a selected image is not verified here
        outcome = verify_image(settings, image, today, rules, on_suite)
        if promote_to is not None and not outcome.failed:
            promote_image(settings, image, outcome, promote_to)
        outcomes.append(outcome)
    return outcomes

