"""Promotion decisions: from a candidate digest, the target's inventory and the gates' results, one of
NOOP / COPY / TAG-MOVE / REFUSED with every reason at once. Pure: gate results are values, not calls.

An image's identity is its index digest; what moves between environments is an Edge (image, source,
target, digest, tags). Tags are pointers set last, in the Edge's order: the immutable build tag first (it
marks the image as completely landed), then the rolling tags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import semver

from moka_images.models import Digest, Environment
from moka_images.plan.graph import BuildTag, rolling_tags
from moka_images.plan.tags import tag_is_mutable


class Outcome(StrEnum):
    """What a promotion does to the target environment."""

    NOOP = "noop"  # every tag already points at the digest
    COPY = "copy"  # the image (or part of it) is not there yet: copy, then set tags
    TAG_MOVE = "tag-move"  # the image is there (its build tag points at it); only rolling tags move
    REFUSED = "refused"  # a gate said no; nothing changes


@dataclass(frozen=True)
class Edge:
    """One image, by digest, from one environment to the next, and the tags it gets there, in order."""

    image: str
    src_env: Environment
    dst_env: Environment
    digest: Digest
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Candidate:
    """The image being promoted: its digest, the build tag that names it and when it was built (if known)."""

    image: str
    digest: Digest
    build: BuildTag
    created: str | None = None  # the index's org.opencontainers.image.created, ISO 8601

    @property
    def version(self) -> semver.Version:
        """The build's semantic version."""
        return semver.Version.parse(self.build.version)


@dataclass(frozen=True)
class Inventory:
    """What one environment's repository holds: tag -> digest, and each digest's creation time when known."""

    tags: Mapping[str, Digest] = field(default_factory=dict)
    created: Mapping[Digest, str] = field(default_factory=dict)

    def builds(self, digest: Digest) -> list[BuildTag]:
        """Build tags pointing at `digest`."""
        return [b for t, d in self.tags.items() if d == digest and (b := BuildTag.parse(t)) is not None]

    def build_tags(self) -> dict[BuildTag, Digest]:
        """Every build tag and its digest."""
        return {b: d for t, d in self.tags.items() if (b := BuildTag.parse(t)) is not None}

    def version_of(self, digest: Digest) -> semver.Version | None:
        """The version a digest was built as (highest, should two builds share it), None if no build tag names it."""
        versions = [semver.Version.parse(b.version) for b in self.builds(digest)]
        return max(versions) if versions else None


@dataclass(frozen=True)
class GateResult:
    """One gate's answer, with what it looked at (attestation digests, key fingerprints, policy)."""

    name: str
    passed: bool
    detail: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form, as recorded."""
        return {"name": self.name, "passed": self.passed, "detail": self.detail, "evidence": dict(self.evidence)}


@dataclass(frozen=True)
class TagMove:
    """A tag set in the target: from `old` (None: a new tag) to `new`."""

    tag: str
    old: Digest | None
    new: Digest

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"tag": self.tag, "old": str(self.old) if self.old else None, "new": str(self.new)}


@dataclass(frozen=True)
class PromotionDecision:
    """The plan for one image: the edge, the outcome, every gate, the tag moves and the tags left alone."""

    edge: Edge
    outcome: Outcome
    gates: tuple[GateResult, ...]
    moves: tuple[TagMove, ...]
    kept: tuple[str, ...] = ()  # why some rolling tags stay where they are
    rollback: bool = False

    @property
    def refused(self) -> bool:
        """Whether a gate said no."""
        return self.outcome is Outcome.REFUSED

    @property
    def problems(self) -> list[str]:
        """Every failed gate, `name: detail`."""
        return [f"{g.name}: {g.detail}" for g in self.gates if not g.passed]

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form (`promote --json`)."""
        e = self.edge
        return {
            "image": e.image, "from": e.src_env.value, "to": e.dst_env.value, "digest": str(e.digest),
            "tags": list(e.tags), "outcome": self.outcome.value, "rollback": self.rollback,
            "gates": [g.to_json() for g in self.gates], "moves": [m.to_json() for m in self.moves],
            "kept": list(self.kept), "problems": self.problems,
        }


def _newer(candidate: Candidate, inventory: Inventory, current: Digest) -> bool | None:
    """Whether the candidate is newer than `current` in the target: by version, then by build time.

    None when it cannot be told (current has no build tag, or same version without both build times).
    """
    version = inventory.version_of(current)
    if version is None:
        return None
    if candidate.version != version:
        return candidate.version > version
    theirs = inventory.created.get(current)
    if candidate.created and theirs and candidate.created != theirs:
        return candidate.created > theirs
    return None


def _describe(inventory: Inventory, digest: Digest) -> str:
    version = inventory.version_of(digest)
    return f"{version} ({digest.short})" if version else digest.short


def stage_gate(src: Environment, dst: Environment) -> GateResult:
    """Promotion goes one stage at a time, forward."""
    if dst.previous is None:
        return GateResult("stage", False, f"nothing is promoted into {dst}: images enter it by being built")
    if src != dst.previous:
        return GateResult("stage", False, f"{dst} takes images from {dst.previous}, not from {src}: promote one "
                                          f"stage at a time")
    return GateResult("stage", True, f"{src} -> {dst}")


def semver_gate(candidate: Candidate, dst: Environment, inventory: Inventory,
                moves: Sequence[TagMove] = ()) -> GateResult:
    """Only final versions reach prod; an immutable tag (a build tag, or any tag the registries hold immutable,
    see plan/tags.py) never moves to another digest."""
    problems = []
    if dst is Environment.PROD and candidate.version.prerelease:
        problems.append(f"{candidate.build.version} is a pre-release; only final versions reach prod "
                        f"(release it as {candidate.version.finalize_version()})")
    there = inventory.tags.get(str(candidate.build))
    if there is not None and there != candidate.digest:
        problems.append(f"build tag {candidate.build} in {dst} already points at {there}, not {candidate.digest}; "
                        f"build tags never move: bump the version and build again")
    for m in moves:
        if m.old is not None and m.tag != str(candidate.build) and not tag_is_mutable(m.tag):
            problems.append(f"tag {m.tag} in {dst} points at {m.old.short} and is immutable there: "
                            f"no promotion can move it")
    if problems:
        return GateResult("semver", False, "; ".join(problems))
    return GateResult("semver", True, f"{candidate.build.version} may enter {dst}")


def approval_gate(dst: Environment, required: bool, approved_by: str | None, *, deferred: bool = False) -> GateResult:
    """An environment that requires approval needs a named approver, who is recorded.

    `deferred`: a plan written now and applied later names its approver when it is applied.
    """
    if not required:
        return GateResult("approval", True, f"not required in {dst}", {"approved_by": approved_by})
    if deferred and not approved_by:
        return GateResult("approval", True, f"{dst} needs a named approver when the plan is applied",
                          {"approved_by": None, "pending": True})
    if not approved_by or not approved_by.strip():
        return GateResult("approval", False, f"{dst} needs a named approver: add --approved-by NAME")
    return GateResult("approval", True, f"approved by {approved_by.strip()}", {"approved_by": approved_by.strip()})


def _outcome(gates: Sequence[GateResult], moves: Sequence[TagMove], candidate: Candidate,
             inventory: Inventory) -> Outcome:
    if any(not g.passed for g in gates):
        return Outcome.REFUSED
    if not moves:
        return Outcome.NOOP
    if inventory.tags.get(str(candidate.build)) == candidate.digest:
        return Outcome.TAG_MOVE
    return Outcome.COPY


def approve(decision: PromotionDecision, approved_by: str | None) -> PromotionDecision:
    """The decision with its approval gate naming the approver (a plan's pending approval, given at apply)."""
    if not approved_by:
        return decision
    gates = tuple(GateResult("approval", True, f"approved by {approved_by.strip()}", {"approved_by": approved_by.strip()})
                  if g.name == "approval" else g for g in decision.gates)
    return replace(decision, gates=gates)


def _in_order(world: Sequence[GateResult], *local: GateResult) -> tuple[GateResult, ...]:
    """Every gate in the order a refusal lists them: the signature first (no other finding may hide broken
    trust), then the cheap local gates, then the evidence read from the world (scan, smoke)."""
    signature = tuple(g for g in world if g.name == "signature")
    return (*signature, *local, *(g for g in world if g.name != "signature"))


def rolling_moves(candidate: Candidate, inventory: Inventory, *,
                  own_version_follows: bool = False) -> tuple[list[TagMove], list[str]]:
    """The rolling tags of the candidate's version that move to it, and why the others stay.

    Forward only: a tag that points at a newer build stays. With `own_version_follows` (the test registry,
    where the declarations are the authority) the `{version}` tag names the candidate whatever it pointed at.
    """
    moves: list[TagMove] = []
    kept: list[str] = []
    for tag in rolling_tags(candidate.build.version):
        current = inventory.tags.get(tag)
        if current == candidate.digest:
            continue
        follows = own_version_follows and tag == candidate.build.version
        if current is not None and not follows and _newer(candidate, inventory, current) is False:
            kept.append(f"{tag} stays at {_describe(inventory, current)}, newer than {candidate.build.version}")
            continue
        moves.append(TagMove(tag, current, candidate.digest))
    return moves, kept


def decide(candidate: Candidate, src: Environment, dst: Environment, inventory: Inventory,
           gates: Sequence[GateResult], *, approval_required: bool, approved_by: str | None,
           approval_deferred: bool = False) -> PromotionDecision:
    """Promote `candidate` from `src` into `dst`, whose repository holds `inventory`.

    `gates` are the results of the checks that need the world (signature, scan, smoke); the stage, semver
    and approval gates are decided here. Rolling tags only move forward: one that points at a newer build
    stays and is reported in `kept`.
    """
    digest, build = candidate.digest, str(candidate.build)
    moves: list[TagMove] = []
    if inventory.tags.get(build) != digest:
        moves.append(TagMove(build, inventory.tags.get(build), digest))
    rolling, kept = rolling_moves(candidate, inventory)
    moves += rolling
    all_gates = _in_order(gates, stage_gate(src, dst), semver_gate(candidate, dst, inventory, moves),
                          approval_gate(dst, approval_required, approved_by, deferred=approval_deferred))
    edge = Edge(candidate.image, src, dst, digest, tuple(m.tag for m in moves))
    return PromotionDecision(edge, _outcome(all_gates, moves, candidate, inventory), all_gates, tuple(moves), tuple(kept))


def decide_rollback(candidate: Candidate, env: Environment, inventory: Inventory, gates: Sequence[GateResult], *,
                    approval_required: bool, approved_by: str | None) -> PromotionDecision:
    """Point `env`'s rolling tags of the candidate's version back at it: an earlier build promoted to `env`.

    The candidate must be there under its build tag, and older than what each moved tag points at now.
    """
    problems = []
    build, digest = str(candidate.build), candidate.digest
    if inventory.tags.get(build) != digest:
        problems.append(f"{build} was never promoted to {env}: a rollback only goes back to a build that is there")
    if env is Environment.PROD and candidate.version.prerelease:
        problems.append(f"{candidate.build.version} is a pre-release; only final versions reach prod")
    moves = []
    for tag in rolling_tags(candidate.build.version):
        current = inventory.tags.get(tag)
        if current == digest:
            continue
        if current is not None and _newer(candidate, inventory, current):
            problems.append(f"{tag} points at {_describe(inventory, current)}, older than {candidate.build}: "
                            f"going there is a promotion (`promote`), not a rollback")
        if current is not None and not tag_is_mutable(tag):
            problems.append(f"tag {tag} in {env} is immutable there: no rollback can move it")
        moves.append(TagMove(tag, current, digest))
    rule = GateResult("semver", not problems, "; ".join(problems) or f"{build} is an earlier build in {env}")
    all_gates = _in_order(gates, rule, approval_gate(env, approval_required, approved_by))
    if any(not g.passed for g in all_gates):
        outcome = Outcome.REFUSED
    else:
        outcome = Outcome.TAG_MOVE if moves else Outcome.NOOP
    edge = Edge(candidate.image, env, env, digest, tuple(m.tag for m in moves))
    return PromotionDecision(edge, outcome, all_gates, tuple(moves), rollback=True)


def record(decision: PromotionDecision, *, repository: str, by: str, at: str, approved_by: str | None,
           registries: Mapping[str, str]) -> dict[str, Any]:
    """The promotion predicate: who, when, which digest, from where to where, every gate with its evidence."""
    e = decision.edge
    return {
        "action": "rollback" if decision.rollback else "promote",
        "image": e.image, "repository": repository, "digest": str(e.digest), "from": e.src_env.value,
        "to": e.dst_env.value, "registries": dict(registries), "outcome": decision.outcome.value, "by": by,
        "approved_by": approved_by, "at": at, "gates": [g.to_json() for g in decision.gates],
        "tags": [m.to_json() for m in decision.moves],
    }


def smoke_covers(predicate: Mapping[str, Any], digest: Digest, platforms: Sequence[str]) -> tuple[bool, str]:
    """Whether a smoke predicate says the suite passed on every platform of the index at `digest`."""
    image = predicate.get("image") or {}
    if image.get("digest") != str(digest):
        return False, f"the smoke result is about {image.get('digest')}, not {digest}"
    passed = {p.get("platform") for p in predicate.get("platforms") or [] if p.get("passed")}
    missing = [p for p in platforms if p not in passed]
    if missing:
        return False, f"smoke did not pass on {', '.join(missing)}"
    if not predicate.get("passed"):
        failures = predicate.get("failures") or []
        return False, "smoke failed: " + ("; ".join(failures[:3]) or "see the smoke attestation")
    return True, f"passed on {', '.join(platforms)} ({predicate.get('backend', '?')})"
