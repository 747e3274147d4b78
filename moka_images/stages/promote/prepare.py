"""A promotion or rollback decided: the source resolved, every gate run, the target inventory read; nothing moved."""

from __future__ import annotations

from dataclasses import dataclass, field

from moka_images import log, metrics
from moka_images.adapters.registry import Registry
from moka_images.config.settings import Settings
from moka_images.errors import ConfigError, GateFailed
from moka_images.models import Environment
from moka_images.plan.graph import BuildTag
from moka_images.plan.promotion import GateResult, Inventory, PromotionDecision, decide, decide_rollback
from moka_images.stages import registries
from moka_images.stages.images import read_inventory
from moka_images.stages.promote.gates import signature_gate, world_gates
from moka_images.stages.promote.inventory import Source, find_source


@dataclass(frozen=True)
class Prepared:
    """A decision and what it was made from: enough to carry it out, or to show it."""

    source: Source
    destination: str  # registry/repository in the target environment
    decision: PromotionDecision
    gates: tuple[GateResult, ...]  # the ones that needed the world: signature, scan, smoke
    approved_by: str | None
    seen: Inventory = field(default_factory=Inventory)  # the target's tags the decision was made against


def prepare(settings: Settings, spec: str, target: Environment, *, src: Environment | None = None,
            approved_by: str | None = None, approval_deferred: bool = False) -> Prepared:
    """Resolve the image in the source environment, run every gate, and decide against the target's inventory.

    `approval_deferred`: for a plan applied later, the approver is named then (the gate says so).
    """
    src = src or target.previous
    if src is None:
        raise ConfigError(f"nothing is promoted into {target}: images enter it by being built",
                          "promote to dev, staging or prod")
    src_client = registries.client(settings, src)
    source = find_source(settings, src, spec, src_client)
    inventory = read_inventory(registries.client(settings, target), source.repository)
    required = settings.env(target).approval_required
    local = decide(source.candidate, src, target, inventory, (), approval_required=required, approved_by=approved_by,
                   approval_deferred=approval_deferred)
    with log.step(f"gates for {source.name} {source.candidate.build} {src} -> {target}"):
        gates = _gates(settings, source, target, src_client, cheap_ones_passed=not local.refused)
    decision = decide(source.candidate, src, target, inventory, gates, approval_required=required,
                      approved_by=approved_by, approval_deferred=approval_deferred)
    _count_gates(decision)
    return Prepared(source, f"{settings.env(target).registry}/{source.repository}", decision, gates, approved_by,
                    inventory)


def _gates(settings: Settings, source: Source, target: Environment, client: Registry, *,
           cheap_ones_passed: bool) -> tuple[GateResult, ...]:
    """The gates that read the world, after the cheap local ones (stage, semver, approval).

    When a local gate already refuses, only the signature is still checked (a refusal always says whether the
    image is trusted); the scan and smoke evidence are not read.
    """
    if cheap_ones_passed:
        return world_gates(settings, source, target, client)
    return (signature_gate(settings, source),)


def prepare_rollback(settings: Settings, image: str, env: Environment, to: str, *,
                     approved_by: str | None = None) -> Prepared:
    """Find the earlier build `to` (a version or a build tag) in `env`, gate it like a promotion, and decide."""
    client = registries.client(settings, env)
    repository = settings.repository(image)
    inventory = read_inventory(client, repository)
    builds = inventory.build_tags()
    wanted = BuildTag.parse(to)
    chosen = [b for b in builds if (b == wanted if wanted else b.version == to)]
    if len(chosen) != 1:
        there = ", ".join(sorted(str(b) for b in builds)) or "none"
        if chosen:
            raise ConfigError(f"{image} has {len(chosen)} builds of {to} in {env}",
                              f"name one by its build tag: {', '.join(sorted(str(b) for b in chosen))}")
        raise ConfigError(f"{image} {to} was never promoted to {env}", f"builds there: {there}")
    source = find_source(settings, env, f"{image}:{chosen[0]}", client, inventory)
    required = settings.env(env).approval_required
    local = decide_rollback(source.candidate, env, inventory, (), approval_required=required, approved_by=approved_by)
    with log.step(f"gates for rolling {image} in {env} back to {chosen[0]}"):
        gates = _gates(settings, source, env, client, cheap_ones_passed=not local.refused)
    decision = decide_rollback(source.candidate, env, inventory, gates, approval_required=required,
                               approved_by=approved_by)
    _count_gates(decision)
    return Prepared(source, source.ref.name, decision, gates, approved_by, inventory)


def _count_gates(decision: PromotionDecision) -> None:
    for gate in decision.gates:
        if gate.name != "scan":  # scan.judge_scan counts its own verdicts
            metrics.gate(gate.name, decision.edge.dst_env.value, decision.edge.image, gate.passed)


def redecide(settings: Settings, prepared: Prepared, inventory: Inventory) -> PromotionDecision:
    edge, approval = prepared.decision.edge, settings.env(prepared.decision.edge.dst_env).approval_required
    if prepared.decision.rollback:
        return decide_rollback(prepared.source.candidate, edge.dst_env, inventory, prepared.gates,
                               approval_required=approval, approved_by=prepared.approved_by)
    return decide(prepared.source.candidate, edge.src_env, edge.dst_env, inventory, prepared.gates,
                  approval_required=approval, approved_by=prepared.approved_by)


def refusal(prepared: Prepared) -> GateFailed:
    """The error that says why a decision was refused, every reason at once."""
    edge = prepared.decision.edge
    what = "rollback" if prepared.decision.rollback else "promotion"
    lines = "\n".join(f"  - {p}" for p in prepared.decision.problems)
    return GateFailed(f"{what} of {edge.image} {prepared.source.candidate.build} to {edge.dst_env} refused:\n{lines}",
                      f"nothing was changed in {edge.dst_env}")
