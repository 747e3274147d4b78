"""Carrying out a prepared promotion under its lock: copy by digest, sign, attest, move tags last, record."""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from moka_images import log, metrics
from moka_images.adapters import host
from moka_images.adapters.blob_cache import BlobLocations
from moka_images.adapters.copy import CopyStats, TagSet, copy_image, set_tags
from moka_images.config.settings import Settings
from moka_images.models import Environment, ImageRef
from moka_images.plan import lifecycle
from moka_images.plan.promotion import Inventory, Outcome, PromotionDecision, record
from moka_images.stages import history, registries, repositories
from moka_images.stages.images import base_repository, read_inventory
from moka_images.stages.promote.prepare import Prepared, prepare, redecide, refusal
from moka_images.stages.verify import attestations, signing
from moka_images.stages.verify.attestations import AttestationKind

COPY_WORKERS = 4


@dataclass(frozen=True)
class Done:
    """What carrying a decision out did."""

    decision: PromotionDecision
    moved: tuple[str, ...]
    copy: CopyStats | None
    record: Mapping[str, Any] | None


def identity(settings: Settings) -> str:
    """Who is acting: the CI's actor and run, else user@host; MOKA_ACTOR overrides it in the local profile only
    (a stand-in for tests and demos, never a way to sign a record in someone else's name elsewhere)."""
    if os.environ.get("MOKA_ACTOR") and settings.profile == "local":
        return os.environ["MOKA_ACTOR"]
    if os.environ.get("GITHUB_ACTOR"):
        run = os.environ.get("GITHUB_RUN_ID")
        return f"github:{os.environ['GITHUB_ACTOR']}" + (f" (run {run})" if run else "")
    return host.user_at_host()


def blob_cache_path(settings: Settings) -> Path:
    """This machine's blob-location cache: which repositories of each registry were seen holding a blob."""
    return settings.home / "cache" / "blob-locations.sqlite"


def lock_path(settings: Settings, image: str, env: Environment) -> Path:
    """The lock that serializes promotions of one image into one environment on this machine."""
    return settings.home / "locks" / "promote" / f"{env.value}--{image.replace('/', '--')}.lock"


def carry_out(settings: Settings, prepared: Prepared, *, by: str | None = None,
              workers: int = COPY_WORKERS) -> Done:
    """Do what the decision says, after re-deciding on the target's inventory under the lock."""
    source, target = prepared.source, prepared.decision.edge.dst_env
    dst = registries.client(settings, target)
    with history.exclusive(lock_path(settings, source.name, target),
                           on_wait=lambda: log.info(f"waiting for another promotion of {source.name} to {target}")):
        inventory = read_inventory(dst, source.repository)
        decision = redecide(settings, prepared, inventory)
        if decision.outcome != prepared.decision.outcome:
            log.info(f"{target} changed since the plan: now {decision.outcome.value}")
        if decision.refused:
            raise refusal(replace(prepared, decision=decision))
        if decision.outcome is Outcome.NOOP:
            log.info(f"{source.name} {source.candidate.build} is already in {target}: nothing to do")
            return Done(decision, (), None, None)
        landed = land(settings, replace(prepared, decision=decision), inventory, by=by, workers=workers)
        return move_tags(settings, landed)


@dataclass(frozen=True)
class Landed:
    """An image copied, signed and its promotion attested in the target: only its tags are left to move."""

    prepared: Prepared
    copy: CopyStats | None
    record: Mapping[str, Any]


def land(settings: Settings, prepared: Prepared, inventory: Inventory, *, by: str | None = None,
         workers: int = COPY_WORKERS) -> Landed:
    """Everything but the tags, each step idempotent: the repository, the copy by digest, the target's
    signature and the promotion record. The caller holds the image's lock."""
    source, decision = prepared.source, prepared.decision
    edge, target = decision.edge, decision.edge.dst_env
    copying = decision.outcome is Outcome.COPY
    src = registries.client(settings, edge.src_env)
    # The repository (made or brought in line in ECR), the account's blob mounting (ECR) and the base's repository
    # (the source registry): three services, asked side by side; the copy waits for all three.
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="moka-ready") as pool:
        # The lifecycle policy must keep what the rolling tags will point at, the ones about to move included.
        made = pool.submit(repositories.ensure_repository, settings, target, source.repository,
                           lifecycle.protected_tags([*inventory.tags, *edge.tags]))
        mounting = pool.submit(repositories.ensure_blob_mounting, settings, target) if copying else None
        # Blobs the target holds under the base's repository (a team image promoted after its base) are mounted
        # from there; earlier versions of this image are in its own repository, where the copy finds them anyway.
        found = pool.submit(base_repository, settings, src, source.repository, edge.digest) if copying else None
        made.result()
        base = found.result() if found else None
        if mounting:
            mounting.result()
    dst_ref = ImageRef(settings.env(target).registry, source.repository, digest=edge.digest)
    stats = None
    if copying:
        with log.step(f"copy {source.name}@{edge.digest.short} {edge.src_env} -> {target}"), \
                BlobLocations(blob_cache_path(settings)) as cache:
            stats = copy_image(src, source.repository, registries.client(settings, target), source.repository,
                               edge.digest, workers=workers, mount_from=[base] if base else [], cache=cache,
                               new_target=not inventory.tags)
        metrics.count(metrics.BYTES_COPIED, stats.bytes_copied, image=source.name, source=edge.src_env.value,
                      target=target.value)
    doc = record(decision, repository=source.repository, by=by or identity(settings),
                 at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), approved_by=prepared.approved_by,
                 registries={e.value: settings.env(e).registry for e in {edge.src_env, target}})
    # The target's signature and the promotion record are two cosign runs on different tags (`.sig`, `.att`):
    # side by side. Both are done before any tag moves; a rerun signs only if no valid signature is there.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="moka-land") as pool:
        signed = None if decision.rollback else pool.submit(signing.sign, settings, target, dst_ref)
        attested = pool.submit(attestations.attest, settings, target, dst_ref, AttestationKind.PROMOTION, doc)
        for done in (signed, attested):
            if done is not None:
                done.result()
    return Landed(prepared, stats, doc)


def move_tags(settings: Settings, landed: Landed) -> Done:
    """The tags, last (build tag first, each compare-and-set), then the history line."""
    decision = landed.prepared.decision
    dst = registries.client(settings, decision.edge.dst_env)
    moved = set_tags(dst, landed.prepared.source.repository, decision.edge.digest,
                     [TagSet(m.tag, m.old) for m in decision.moves])
    history.append(settings, {**landed.record, "moved": moved, "copy": landed.copy.to_json() if landed.copy else None})
    return Done(decision, tuple(moved), landed.copy, landed.record)


def promote(settings: Settings, spec: str, target: Environment, *, src: Environment | None = None,
            approved_by: str | None = None, by: str | None = None, workers: int = COPY_WORKERS) -> Done:
    """Prepare and carry out one promotion (what CI calls); GateFailed, with nothing changed, if refused."""
    prepared = prepare(settings, spec, target, src=src, approved_by=approved_by)
    if prepared.decision.refused:
        raise refusal(prepared)
    return carry_out(settings, prepared, by=by, workers=workers)


# ---- showing -----------------------------------------------------------------------------------

