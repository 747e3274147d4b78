"""Releases by digest: plan a release for one target once, approve that plan, apply exactly it.

`plan_release` decides every image of a release (by its digest, never by a tag) against the target as it is
now, without moving anything. `apply_plan` takes the plan back, holds every image's lock, re-reads only the
target's tags and refuses, naming the tag, if any tag the plan moves no longer points where the plan saw it.
Otherwise it lands every image (copy, signature, promotion record) before any tag moves, then moves tags image
by image in the release's order (bases before the team images on them). Each step is idempotent, so a rerun
after a crash converges.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime

from moka_images import log
from moka_images.config.release import PLAN_SCHEMA, PlannedImage, PromotionPlan, Release
from moka_images.config.settings import Settings
from moka_images.errors import ConfigError, GateFailed
from moka_images.models import Digest, Environment, ImageRef
from moka_images.plan.graph import BuildTag
from moka_images.plan.promotion import (
    Candidate,
    Edge,
    GateResult,
    Outcome,
    PromotionDecision,
    TagMove,
    approve,
)
from moka_images.stages import history, registries
from moka_images.stages.images import read_inventory
from moka_images.stages.promote.apply import COPY_WORKERS, Done, identity, land, lock_path, move_tags
from moka_images.stages.promote.inventory import Source
from moka_images.stages.promote.prepare import Prepared, prepare


def plan_release(settings: Settings, release: Release, target: Environment, *,
                 src: Environment | None = None) -> PromotionPlan:
    """Decide every image of `release` for `target` (gates, tag moves); the approver is named when applied."""
    src = src or target.previous
    if src is None:
        raise ConfigError(f"nothing is promoted into {target}: images enter it by being built",
                          "promote to dev, staging or prod")
    planned = [prepare(settings, f"{image.name}@{image.digest}", target, src=src, approval_deferred=True)
               for image in release.images]
    for image, prepared in zip(release.images, planned, strict=True):
        if str(prepared.source.candidate.build) != image.build_tag:
            log.info(f"{image.name}@{image.digest} is {prepared.source.candidate.build} in {src}, "
                     f"the release names {image.build_tag}")
    return to_plan(settings, planned, src, target)


def to_plan(settings: Settings, planned: list[Prepared], src: Environment, target: Environment) -> PromotionPlan:
    """Prepared promotions as a plan document."""
    images = []
    for p in planned:
        d = p.decision
        images.append({
            "image": p.source.name, "repository": p.source.repository, "source": str(p.source.ref),
            "destination": p.destination, "build_tag": str(p.source.candidate.build),
            "created": p.source.candidate.created, "platforms": list(p.source.platforms), "outcome": d.outcome.value,
            "rollback": d.rollback, "gates": [g.to_json() for g in d.gates], "moves": [m.to_json() for m in d.moves],
            "kept": list(d.kept), "inventory": {t: str(v) for t, v in sorted(p.seen.tags.items())}})
    return PromotionPlan.model_validate({
        "schema": PLAN_SCHEMA, "made_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "made_by": identity(settings), "from": src.value, "to": target.value,
        "approval_required": settings.env(target).approval_required, "images": images})


def _prepared(item: PlannedImage, src: Environment, target: Environment) -> Prepared:
    """A plan's image back as the value `land` and `move_tags` act on."""
    ref = ImageRef.parse(item.source)
    build = BuildTag.parse(item.build_tag)
    if ref.digest is None or build is None:
        raise ConfigError(f"the plan's {item.image} is not pinned to a digest and a build tag",
                          "make the plan again with `moka-images promote --plan-out`")
    moves = tuple(TagMove(m.tag, Digest(m.old) if m.old else None, Digest(m.new)) for m in item.moves)
    gates = tuple(GateResult(g.name, g.passed, g.detail, g.evidence) for g in item.gates)
    edge = Edge(item.image, src, target, ref.digest, tuple(m.tag for m in moves))
    decision = PromotionDecision(edge, Outcome(item.outcome), gates, moves, tuple(item.kept), item.rollback)
    candidate = Candidate(item.image, ref.digest, build, item.created)
    return Prepared(Source(item.image, src, ref, candidate, tuple(item.platforms)), item.destination, decision,
                    gates, None)


def triggered_by() -> str | None:
    """Who started this CI run (the four-eyes rule compares the approver with it); None outside CI."""
    return os.environ.get("GITHUB_TRIGGERING_ACTOR") or os.environ.get("GITHUB_ACTOR")


def apply_plan(settings: Settings, plan: PromotionPlan, *, approved_by: str | None = None,
               workers: int = COPY_WORKERS) -> list[Done]:
    """Apply exactly `plan`, or refuse with what changed in the target since it was made (nothing moves then)."""
    src, target = Environment.parse(plan.source), Environment.parse(plan.target)
    items = [_prepared(item, src, target) for item in plan.images]
    refused = [p for p in items if p.decision.refused]
    if refused:
        lines = "\n".join(f"  - {p.source.name}: {problem}" for p in refused for problem in p.decision.problems)
        raise GateFailed(f"the plan refuses {len(refused)} image(s):\n{lines}", f"nothing was changed in {target}")
    if plan.approval_required or settings.env(target).approval_required:
        _check_approval(target, approved_by)
    items = [replace(p, approved_by=approved_by, decision=approve(p.decision, approved_by)) for p in items]
    with ExitStack() as locks:
        for name in sorted(p.source.name for p in items):  # one order for every process: no deadlock
            locks.enter_context(history.exclusive(lock_path(settings, name, target), on_wait=_waiting(name, target)))
        inventories = {p.source.name: read_inventory(registries.client(settings, target), p.source.repository)
                       for p in items}
        changed = [f"{p.source.name}: tag {m.tag} in {target} points at {_short(now)}, the plan saw {_short(m.old)}"
                   for p in items for m in p.decision.moves
                   if (now := inventories[p.source.name].tags.get(m.tag)) != m.old]
        if changed:
            lines = "\n".join(f"  - {c}" for c in changed)
            raise GateFailed(f"{target} changed since the plan was made:\n{lines}",
                             "nothing was changed; make a new plan and have it approved")
        todo = [p for p in items if p.decision.outcome is not Outcome.NOOP]
        by = identity(settings)
        landed = [land(settings, p, inventories[p.source.name], by=by, workers=workers) for p in todo]
        return [move_tags(settings, one) for one in landed]


def _waiting(name: str, target: Environment) -> Callable[[], None]:
    return lambda: log.info(f"waiting for another promotion of {name} to {target}")


def _check_approval(target: Environment, approved_by: str | None) -> None:
    if not approved_by or not approved_by.strip():
        raise GateFailed(f"{target} needs a named approver to apply this plan", "add --approved-by NAME")
    starter = triggered_by()
    if target is Environment.PROD and starter and approved_by.strip() == starter:
        raise GateFailed(f"prod needs four eyes: {starter} started this run and cannot also approve it",
                         "another reviewer approves the protected environment")


def _short(digest: Digest | None) -> str:
    return digest.short if digest else "nothing"
