"""`moka-images promote | rollback`: move an image by digest to the next environment, gated and recorded.

Without --confirm the plan is printed and nothing changes. With it, under a per-(image, environment) lock,
the target's inventory is read again and the decision re-made; then, in this order: the repository is
ensured in the target account, the image is copied by digest (blobs, manifests, index, then cosign's
signatures and attestations), signed with the target environment's key, the promotion is attested there,
and only then do tags move (build tag first, each compare-and-set), and the local history gets its line.

Signatures: promotion copies every signature it finds, then adds one by the target environment's key. The
`.sig` of an image in prod thus holds test's, dev's, staging's and prod's signatures: each environment
verifies with its own public key (`cosign verify --key prod.pub` succeeds in prod), and the gate into the
next environment verifies with the source environment's key, as the issue asks.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import hashlib
import json
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

import semver
from rich.console import Console
from rich.markup import escape

from moka_images import log, metrics
from moka_images.adapters import ecr
from moka_images.adapters.copy import CopyStats, TagSet, copy_image, set_tags
from moka_images.adapters.registry import Manifest, RegistryClient
from moka_images.config.settings import Settings, load_settings
from moka_images.errors import ConfigError, GateFailed
from moka_images.findings import ScanReport
from moka_images.models import Digest, Environment, ImageRef, Platform
from moka_images.plan import lifecycle
from moka_images.plan.graph import BuildTag
from moka_images.plan.promotion import (
    Candidate,
    Decision,
    GateResult,
    Inventory,
    Outcome,
    decide,
    decide_rollback,
    record,
    smoke_covers,
)
from moka_images.stages import history, keys, registries
from moka_images.stages.images import resolve
from moka_images.stages.verify import attestations, scan, signing
from moka_images.stages.verify.attestations import Kind

CREATED = "org.opencontainers.image.created"
COPY_WORKERS = 4


@dataclass(frozen=True)
class Source:
    """The image being moved, as found in one environment: pinned reference, candidate and platforms."""

    name: str
    env: Environment
    ref: ImageRef
    candidate: Candidate
    platforms: tuple[str, ...]

    @property
    def repository(self) -> str:
        """Its repository (the same in every environment)."""
        return self.ref.repository


@dataclass(frozen=True)
class Prepared:
    """A decision and what it was made from: enough to carry it out, or to show it."""

    source: Source
    destination: str  # registry/repository in the target environment
    decision: Decision
    gates: tuple[GateResult, ...]  # the ones that needed the world: signature, scan, smoke
    approved_by: str | None
    smoke_predicate: Mapping[str, Any] | None = None  # a suite run by the gate, attested in the target


@dataclass(frozen=True)
class Done:
    """What carrying a decision out did."""

    decision: Decision
    moved: tuple[str, ...]
    copy: CopyStats | None
    record: Mapping[str, Any] | None


def identity() -> str:
    """Who is acting: MOKA_ACTOR, else the CI's actor and run, else user@host."""
    if os.environ.get("MOKA_ACTOR"):
        return os.environ["MOKA_ACTOR"]
    if os.environ.get("GITHUB_ACTOR"):
        run = os.environ.get("GITHUB_RUN_ID")
        return f"github:{os.environ['GITHUB_ACTOR']}" + (f" (run {run})" if run else "")
    return f"{getpass.getuser()}@{socket.gethostname()}"


# ---- reading registries ------------------------------------------------------------------------


def _tracked(tag: str) -> bool:
    """Tags promotion reads and moves: build tags and rolling tags (not cosign's, not per-arch build tags)."""
    build, _, arch = tag.rpartition("-")
    if arch in ("amd64", "arm64") and BuildTag.parse(build) is not None:
        return False  # the build's per-platform tag in test: never promoted
    if BuildTag.parse(tag) is not None or tag == "latest" or semver.Version.is_valid(tag):
        return True
    major, _, minor = tag.partition(".")
    return major.isdigit() and minor.isdigit()


def _created(manifest: Manifest) -> str | None:
    return (manifest.json.get("annotations") or {}).get(CREATED)


def read_inventory(client: RegistryClient, repository: str) -> Inventory:
    """Build and rolling tags of a repository and where they point, with the build times of rolled digests."""
    tags: dict[str, Digest] = {}
    for tag in client.list_tags(repository):
        if _tracked(tag) and (digest := client.head_manifest(repository, tag)) is not None:
            tags[tag] = digest
    rolled = {d for t, d in tags.items() if BuildTag.parse(t) is None}
    created = {d: c for d in rolled if (c := _created(client.get_manifest(repository, str(d))))}
    return Inventory(tags, created)


def _platforms(client: RegistryClient, repository: str, manifest: Manifest) -> tuple[str, ...]:
    if manifest.is_index:
        return tuple(sorted(str(p) for p in manifest.platforms()))
    config = json.loads(client.get_blob(repository, manifest.blobs()[0]))
    return (str(Platform.parse(f"{config.get('os')}/{config.get('architecture')}")),)


def find_source(settings: Settings, env: Environment, spec: str, client: RegistryClient,
                inventory: Inventory | None = None) -> Source:
    """`IMAGE[:VERSION|:BUILD-TAG|@DIGEST]` in `env`, with the build tag that names its digest there."""
    resolved = resolve(settings, env, spec, client)
    digest = resolved.ref.digest
    assert digest is not None
    repository = resolved.ref.repository
    inventory = inventory or read_inventory(client, repository)
    builds = inventory.builds(digest)
    asked = BuildTag.parse(resolved.tag) if resolved.tag else None
    if asked is None and resolved.tag and semver.Version.is_valid(resolved.tag):
        builds = [b for b in builds if b.version == resolved.tag] or builds
    if asked is None and not builds:
        raise ConfigError(f"{spec} in {env} ({digest.short}) has no build tag",
                          "only images built by moka-images are promoted: they carry a {version}-{own}-{base} tag")
    build = asked or max(builds, key=lambda b: semver.Version.parse(b.version))
    manifest = client.get_manifest(repository, str(digest))
    candidate = Candidate(resolved.name, digest, build, _created(manifest))
    return Source(resolved.name, env, resolved.ref, candidate, _platforms(client, repository, manifest))


def predicate_key(predicate_type: str, predicate: Mapping[str, Any]) -> str:
    """A stable fingerprint of a predicate, to find the attestation that carries it."""
    return hashlib.sha256(json.dumps([predicate_type, predicate], sort_keys=True).encode()).hexdigest()


def attestation_digests(client: RegistryClient, repository: str, digest: Digest) -> dict[str, str]:
    """Digest of the DSSE envelope holding each attestation on `digest`, by predicate fingerprint: the evidence."""
    tag = f"sha256-{digest.hex}.att"
    if client.head_manifest(repository, tag) is None:
        return {}
    out = {}
    for layer in client.get_manifest(repository, tag).json.get("layers", []):
        try:
            envelope = json.loads(client.get_blob(repository, Digest(layer["digest"])))
            statement = json.loads(base64.b64decode(envelope["payload"]))
            out[predicate_key(statement["predicateType"], statement["predicate"])] = layer["digest"]
        except (KeyError, TypeError, ValueError, binascii.Error):
            continue  # not an in-toto attestation; the verified reading reports it
    return out


# ---- gates that need the world -----------------------------------------------------------------


def signature_gate(settings: Settings, source: Source) -> GateResult:
    """A signature on the digest verifies with the source environment's key."""
    check = signing.verify_signature(settings, source.env, source.ref)
    key = keys.describe(settings, source.env)
    if check.ok:
        return GateResult("signature", True, f"{len(check.verified)} signature(s) verify with {key}",
                          {"key": key, "signatures": len(check.verified)})
    return GateResult("signature", False, f"no signature on {source.candidate.digest.short} verifies with {key}: "
                                          f"{check.problem}", {"key": key})


def scan_gate(settings: Settings, source: Source, target: Environment, client: RegistryClient,
              evidence: Mapping[str, str], today: date) -> GateResult:
    """The scan passes the target environment's policy.

    The attested scan's reports are judged when the predicate carries them; otherwise the image is scanned
    (trivy per platform, cached by platform digest and DB, so usually no work) and judged.
    """
    attested = attestations.read_attestations(settings, source.env, source.ref, Kind.SCAN)
    latest = attested[-1] if attested else None
    facts: dict[str, Any] = {"policy": str(settings.policy_path(target).relative_to(settings.root))
                             if settings.policy_path(target).is_relative_to(settings.root)
                             else str(settings.policy_path(target))}
    if latest is not None:
        facts["attestation"] = evidence.get(predicate_key(latest.predicate_type, latest.predicate))
        facts["attested_by"] = latest.signer.value
    reports = [ScanReport.from_json(r) for r in latest.predicate.get("reports") or []] if latest else []
    if not reports:
        registries.login_tools(settings, source.env)  # trivy reads the registry login from the docker config
        result = scan.scan_image(settings, client, source.ref, source.name)
        facts["scanned"] = "cache" if len(result.from_cache) == len(result.reports) else "trivy"
    else:
        result = scan.ImageScan(source.ref, source.name, tuple(reports), ())
    scanned = sorted(str(r.platform) for r in result.reports)
    if scanned != sorted(source.platforms):
        return GateResult("scan", False, f"scanned {', '.join(scanned) or 'nothing'}, but the index has "
                                         f"{', '.join(source.platforms)}", facts)
    verdict = scan.judge_scan(settings, result, target, today)
    facts["db"] = result.reports[0].db.key if result.reports else None
    facts["blocking"] = sorted({f"{f.id} {f.package}" for f in verdict.blocking})
    if verdict.allowed:
        return GateResult("scan", True, f"allowed by {target} policy ({len(verdict.waived)} waived)", facts)
    shown = sorted({f"{f.id} in {f.package} ({f.severity.name}): {f.unblock}" for f in verdict.blocking})
    more = f" and {len(shown) - 4} more" if len(shown) > 4 else ""
    return GateResult("scan", False, f"blocked by {target} policy: {'; '.join(shown[:4])}{more}", facts)


def smoke_gate(settings: Settings, source: Source,
               evidence: Mapping[str, str]) -> tuple[GateResult, Mapping[str, Any] | None]:
    """Smoke passed on every platform of the index: the newest attested result, or a run of the suite now."""
    digest = source.candidate.digest
    attested = [a for a in attestations.read_attestations(settings, source.env, source.ref, Kind.SMOKE)
                if (a.predicate.get("image") or {}).get("digest") == str(digest)]
    if attested:
        latest = attested[-1]
        ok, detail = smoke_covers(latest.predicate, digest, source.platforms)
        facts = {"attestation": evidence.get(predicate_key(latest.predicate_type, latest.predicate)),
                 "attested_by": latest.signer.value}
        return GateResult("smoke", ok, detail, facts), None
    from moka_images.smoke.report import predicate
    from moka_images.stages.pipeline import smoke_jobs
    from moka_images.stages.verify import smoke as smoke_cli

    log.info(f"no smoke result is attested for {digest.short}: running the suite")
    suite = smoke_cli.smoke(settings, source.env, source.ref, smoke_jobs(settings, source.name))
    doc = predicate(suite)
    ok, detail = smoke_covers(doc, digest, source.platforms)
    return GateResult("smoke", ok, f"{detail} (run now)", {"attestation": None, "run_now": True}), doc


def _world_gates(settings: Settings, source: Source, target: Environment,
                 client: RegistryClient) -> tuple[tuple[GateResult, ...], Mapping[str, Any] | None]:
    evidence = attestation_digests(client, source.repository, source.candidate.digest)
    signature = signature_gate(settings, source)
    scanned = scan_gate(settings, source, target, client, evidence, datetime.now(UTC).date())
    smoke, ran = smoke_gate(settings, source, evidence)
    return (signature, scanned, smoke), ran


# ---- planning ----------------------------------------------------------------------------------


def prepare(settings: Settings, spec: str, target: Environment, *, src: Environment | None = None,
            approved_by: str | None = None) -> Prepared:
    """Resolve the image in the source environment, run every gate, and decide against the target's inventory."""
    src = src or target.previous
    if src is None:
        raise ConfigError(f"nothing is promoted into {target}: images enter it by being built",
                          "promote to dev, staging or prod")
    src_client = registries.client(settings, src)
    source = find_source(settings, src, spec, src_client)
    with log.step(f"gates for {source.name} {source.candidate.build} {src} -> {target}"):
        gates, ran = _world_gates(settings, source, target, src_client)
    inventory = read_inventory(registries.client(settings, target), source.repository)
    decision = decide(source.candidate, src, target, inventory, gates,
                      approval_required=settings.env(target).approval_required, approved_by=approved_by)
    _count_gates(decision)
    return Prepared(source, f"{settings.env(target).registry}/{source.repository}", decision, gates, approved_by, ran)


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
    with log.step(f"gates for rolling {image} in {env} back to {chosen[0]}"):
        gates, ran = _world_gates(settings, source, env, client)
    decision = decide_rollback(source.candidate, env, inventory, gates,
                               approval_required=settings.env(env).approval_required, approved_by=approved_by)
    _count_gates(decision)
    return Prepared(source, source.ref.name, decision, gates, approved_by, ran)


def _count_gates(decision: Decision) -> None:
    for gate in decision.gates:
        if gate.name != "scan":  # scan.judge_scan counts its own verdicts
            metrics.gate(gate.name, decision.edge.dst_env.value, decision.edge.image, gate.passed)


def _redecide(settings: Settings, prepared: Prepared, inventory: Inventory) -> Decision:
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


# ---- carrying it out ---------------------------------------------------------------------------


def lock_path(settings: Settings, image: str, env: Environment) -> os.PathLike[str]:
    """The lock that serializes promotions of one image into one environment on this machine."""
    return settings.home / "locks" / "promote" / f"{env.value}--{image.replace('/', '--')}.lock"


def carry_out(settings: Settings, prepared: Prepared, *, by: str | None = None,
              workers: int = COPY_WORKERS) -> Done:
    """Do what the decision says, after re-deciding on the target's inventory under the lock."""
    source, edge = prepared.source, prepared.decision.edge
    target = edge.dst_env
    dst = registries.client(settings, target)
    with history.exclusive(lock_path(settings, source.name, target),
                           on_wait=lambda: log.info(f"waiting for another promotion of {source.name} to {target}")):
        inventory = read_inventory(dst, source.repository)
        decision = _redecide(settings, prepared, inventory)
        if decision.outcome != prepared.decision.outcome:
            log.info(f"{target} changed since the plan: now {decision.outcome.value}")
        if decision.refused:
            raise refusal(replace(prepared, decision=decision))
        if decision.outcome is Outcome.NOOP:
            log.info(f"{source.name} {source.candidate.build} is already in {target}: nothing to do")
            return Done(decision, (), None, None)
        # The lifecycle policy must keep what the rolling tags will point at, the ones about to move included.
        ecr.ensure_repository(settings, target, source.repository,
                              lifecycle.protected_tags([*inventory.tags, *decision.edge.tags]))
        dst_ref = ImageRef(settings.env(target).registry, source.repository, digest=edge.digest)
        stats = None
        if decision.outcome is Outcome.COPY:
            with log.step(f"copy {source.name}@{edge.digest.short} {edge.src_env} -> {target}"):
                stats = copy_image(registries.client(settings, edge.src_env), source.repository, dst,
                                   source.repository, edge.digest, workers=workers)
            metrics.count(metrics.BYTES_COPIED, stats.bytes_copied, image=source.name, source=edge.src_env.value,
                          target=target.value)
        if not decision.rollback:
            signing.sign(settings, target, dst_ref)
        if prepared.smoke_predicate is not None:
            attestations.attest(settings, target, dst_ref, Kind.SMOKE, prepared.smoke_predicate, replace=True)
        doc = record(decision, repository=source.repository, by=by or identity(),
                     at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), approved_by=prepared.approved_by,
                     registries={e.value: settings.env(e).registry for e in {edge.src_env, target}})
        attestations.attest(settings, target, dst_ref, Kind.PROMOTION, doc)
        moved = set_tags(dst, source.repository, edge.digest, [TagSet(m.tag, m.old) for m in decision.moves])
        history.append(settings, {**doc, "moved": moved, "copy": stats.to_json() if stats else None})
    return Done(decision, tuple(moved), stats, doc)


def promote(settings: Settings, spec: str, target: Environment, *, src: Environment | None = None,
            approved_by: str | None = None, by: str | None = None, workers: int = COPY_WORKERS) -> Done:
    """Prepare and carry out one promotion (what CI calls); GateFailed, with nothing changed, if refused."""
    prepared = prepare(settings, spec, target, src=src, approved_by=approved_by)
    if prepared.decision.refused:
        raise refusal(prepared)
    return carry_out(settings, prepared, by=by, workers=workers)


# ---- showing -----------------------------------------------------------------------------------


def render(prepared: Prepared, console: Console, done: Done | None = None) -> None:
    """The plan (or what was done) as people read it."""
    d = done.decision if done else prepared.decision
    e, c = d.edge, prepared.source.candidate
    what = "rollback" if d.rollback else "promote"
    where = f"in {e.dst_env}" if d.rollback else f"{e.src_env} -> {e.dst_env}"
    style = {Outcome.NOOP: "dim", Outcome.COPY: "bold cyan", Outcome.TAG_MOVE: "cyan", Outcome.REFUSED: "bold red"}
    console.print(escape(f"{what} {e.image} {c.build} {where}"), soft_wrap=True)
    console.print(escape(f"  from     {prepared.source.ref}  ({', '.join(prepared.source.platforms)})"),
                  soft_wrap=True)
    console.print(escape(f"  to       {prepared.destination}"), soft_wrap=True)
    label = {Outcome.NOOP: "already there (no-op)", Outcome.COPY: "copy", Outcome.TAG_MOVE: "move tags",
             Outcome.REFUSED: "REFUSED"}[d.outcome]
    console.print(f"  outcome  [{style[d.outcome]}]{label}[/]" + (" (done)" if done else " (plan)"))
    for g in d.gates:
        mark = "[green]✓[/]" if g.passed else "[bold red]✗[/]"
        console.print(f"  {mark} {g.name}: {escape(g.detail)}", soft_wrap=True)
    verb = "moved" if done else "moves"
    for m in () if d.refused else d.moves:
        console.print(escape(f"  tag {m.tag} {verb}: {m.old.short if m.old else 'new'} -> {m.new.short}"),
                      soft_wrap=True)
    for note in d.kept:
        console.print(escape(f"  tag {note}"), style="yellow", soft_wrap=True)
    if done and done.copy:
        s = done.copy
        console.print(f"  copied {s.blobs_copied} blob(s), {s.bytes_copied / 1e6:.1f} MB, mounted {s.blobs_mounted}, "
                      f"{s.blobs_present} already there, {len(s.attachments)} cosign tag(s), in {s.seconds:.1f}s",
                      soft_wrap=True)
    if not done and not d.refused and d.outcome is not Outcome.NOOP:
        console.print("  nothing changed: add --confirm to carry this out", style="dim")


def _output(args: argparse.Namespace, prepared: Prepared, done: Done | None) -> None:
    if args.json:
        doc = {**(done.decision if done else prepared.decision).to_json(), "done": done is not None,
               "source": str(prepared.source.ref), "destination": prepared.destination,
               "build_tag": str(prepared.source.candidate.build), "platforms": list(prepared.source.platforms),
               "moved": list(done.moved) if done else [], "copy": done.copy.to_json() if done and done.copy else None}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        render(prepared, Console(highlight=False), done)


def _finish(args: argparse.Namespace, settings: Settings, prepared: Prepared) -> int:
    if prepared.decision.refused:
        _output(args, prepared, None)
        raise refusal(prepared)
    if not args.confirm:
        _output(args, prepared, None)
        return 0
    done = carry_out(settings, prepared, workers=args.jobs)
    _output(args, prepared, done)
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    settings = load_settings(profile=args.profile)
    target = Environment.parse(args.to)
    src = Environment.parse(args.source) if args.source else None
    prepared = prepare(settings, args.image, target, src=src, approved_by=args.approved_by)
    return _finish(args, settings, prepared)


def _cmd_rollback(args: argparse.Namespace) -> int:
    settings = load_settings(profile=args.profile)
    prepared = prepare_rollback(settings, args.image, Environment.parse(args.env), args.to,
                                approved_by=args.approved_by)
    return _finish(args, settings, prepared)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `promote` and `rollback`."""
    envs = [e.value for e in Environment]
    p = sub.add_parser("promote", help="copy an image by digest to the next environment, gated (dry run by default)")
    p.add_argument("image", metavar="IMAGE[:VERSION]", help="image name with a version, build tag or @digest "
                                                             "(default: latest)")
    p.add_argument("--to", required=True, choices=envs[1:], help="target environment")
    p.add_argument("--from", dest="source", choices=envs[:-1], help="source environment (default: the one before)")
    _common(p)
    p.set_defaults(func=_cmd_promote)
    r = sub.add_parser("rollback", help="point an environment's rolling tags back at an earlier promoted build")
    r.add_argument("image", metavar="IMAGE", help="image name, e.g. spark-3.5")
    r.add_argument("--env", required=True, choices=envs, help="environment to roll back")
    r.add_argument("--to", required=True, metavar="VERSION", help="the version (or build tag) to go back to")
    _common(r)
    r.set_defaults(func=_cmd_rollback)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--confirm", action="store_true", help="carry the plan out (without it nothing changes)")
    p.add_argument("--approved-by", metavar="NAME", help="the approver, required where the environment asks for one")
    p.add_argument("--jobs", type=int, default=COPY_WORKERS, metavar="N", help="blobs copied at once (default 4)")
    p.add_argument("--json", action="store_true", help="print the decision as JSON on stdout")

