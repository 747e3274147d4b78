"""`moka-images status`: image x environment, what each holds (version, digest, signed, scan, smoke), and what is
pending promotion or has drifted from the manifests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import semver

from moka_images.adapters import cosign
from moka_images.adapters.registry import Registry
from moka_images.config.manifests import load_declarations
from moka_images.config.settings import Settings
from moka_images.models import Digest, Environment, ImageRef
from moka_images.plan.graph import BuildTag
from moka_images.plan.promotion import Inventory
from moka_images.plan.tags import TagKind, kind_of
from moka_images.stages import keys, registries
from moka_images.stages.images import read_inventory
from moka_images.stages.verify import signing
from moka_images.stages.verify.attestations import Attestation, AttestationKind, audit

# cells read at once: registry round trips, verified in-process, no processes (500 x 4 cells here, 2-3 alternating
# runs each: 26.4 s at 16, 24.6 s at 32, 31 s at 8)
CELLS_AT_ONCE = 32


@dataclass(frozen=True)
class Cell:
    """One image in one environment: the build its `latest` (else its highest version tag) points at."""

    env: Environment
    digest: Digest | None = None
    version: str | None = None
    build: str | None = None
    signed: bool | None = None
    scan: str | None = None
    smoke: str | None = None
    promoted: Mapping[str, Any] = field(default_factory=dict)  # by, at, approved_by of the last promotion

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"env": self.env.value, "digest": str(self.digest) if self.digest else None, "version": self.version,
                "build": self.build, "signed": self.signed, "scan": self.scan, "smoke": self.smoke,
                "promoted": dict(self.promoted)}


@dataclass(frozen=True)
class Row:
    """One image across the environments, with what needs attention."""

    image: str
    declared: str | None  # the version in the manifests, None if the image is not declared
    cells: tuple[Cell, ...]
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"image": self.image, "declared": self.declared, "environments": [c.to_json() for c in self.cells],
                "notes": list(self.notes)}


def _version_tags(tags: Iterable[str]) -> list[str]:
    """The full-version rolling tags (`1.2.0`, not `1.2` nor `latest`), in the order given."""
    return [t for t in tags if kind_of(t) is TagKind.ROLLING and semver.Version.is_valid(t)]


def current(inventory: Inventory) -> tuple[Digest, str | None, str | None] | None:
    """What an environment serves: `latest`, else the highest version tag; with its version and build tag."""
    digest = inventory.tags.get("latest")
    if digest is None:
        versions = _version_tags(inventory.tags)
        if not versions:
            return None
        digest = inventory.tags[max(versions, key=semver.Version.parse)]
    builds = sorted(inventory.builds(digest), key=lambda b: semver.Version.parse(b.version))
    version = inventory.version_of(digest)
    return digest, str(version) if version else None, str(builds[-1]) if builds else None


def serving_tag(listed: Iterable[str]) -> str | None:
    """The tag whose digest an environment serves, as `current` picks it: `latest`, else the highest
    full-version tag; None without either. Pure."""
    tags = list(listed)
    if "latest" in tags:
        return "latest"
    versions = _version_tags(tags)
    return max(versions, key=semver.Version.parse) if versions else None


def build_search(listed: Iterable[str]) -> list[list[str]]:
    """The build tags in the rounds they are looked up in to find the served digest's: highest version first,
    whole versions per round, each round at least twice the one before (1, 2, 4 ... tags). The served build is
    nearly always the newest (one lookup); a rollback to an old build costs a few rounds, not a lookup per
    build the repository ever had. Pure."""
    by_version: dict[str, list[str]] = {}
    for tag in listed:
        if (build := BuildTag.parse(tag)) is not None:
            by_version.setdefault(build.version, []).append(tag)
    rounds: list[list[str]] = []
    size = 1
    for version in sorted(by_version, key=semver.Version.parse, reverse=True):
        if not rounds or len(rounds[-1]) >= size:
            size = 2 * len(rounds[-1]) if rounds else 1
            rounds.append([])
        rounds[-1].extend(by_version[version])
    return rounds


def serving(client: Registry, repository: str, listed: Sequence[str]) -> tuple[Digest, str | None, str | None] | None:
    """What `current` says of the whole repository, from as few lookups as it takes: the serving tag, then the
    build tags round by round (`build_search`) until one points at its digest."""
    tag = serving_tag(listed)
    if tag is None or (digest := client.head_manifest(repository, tag)) is None:
        return None
    for tags in build_search(listed):
        found = read_inventory(client, repository, tags=tags, with_created=False)
        if found.builds(digest):
            return current(Inventory({tag: digest, **found.tags}))
    return digest, None, None


def notes(declared: str | None, cells: Sequence[Cell]) -> list[str]:
    """Drift from the manifests (test) and promotions pending (an environment behind the one before it). Pure."""
    out = []
    test = cells[0]
    if declared is None:
        out.append("drift: not declared in the manifests")
    elif test.digest is None:
        out.append(f"drift: manifests declare {declared}, nothing is built in test")
    elif test.version != declared:
        out.append(f"drift: manifests declare {declared}, test serves {test.version or 'an untagged build'}")
    for before, cell in pairwise(cells):
        if before.digest is None or before.digest == cell.digest:
            continue
        if cell.version and before.version and semver.Version.parse(before.version) < semver.Version.parse(
                cell.version):
            continue
        out.append(f"pending: {before.version or before.digest.short} {before.env} -> {cell.env}")
    return out


def _summaries(env: Environment, digest: Digest, found: Sequence[Attestation]) -> tuple[str | None, str | None,
                                                                                         dict[str, Any]]:
    scan = smoke = None
    promoted: dict[str, Any] = {}
    for att in found:  # oldest first: later ones win
        p = att.predicate
        if att.kind is AttestationKind.PROMOTION and p.get("to") == env.value and p.get("digest") == str(digest):
            promoted = {k: p.get(k) for k in ("by", "at", "approved_by", "from", "action")}
            gate = next((g for g in p.get("gates") or [] if g.get("name") == "scan"), None)
            if gate:
                scan = ("allowed" if gate.get("passed") else "BLOCKED") + f" ({env} policy, at promotion)"
        elif att.kind is AttestationKind.SCAN and not promoted:
            verdict = p.get("verdict") or {}
            scan = ("allowed" if verdict.get("allowed") else "BLOCKED") + f" ({verdict.get('environment')} policy)"
        elif att.kind is AttestationKind.SMOKE and (p.get("image") or {}).get("digest") == str(digest):
            smoke = "passed" if p.get("passed") else "FAILED"
    return scan, smoke, promoted


def _cell(settings: Settings, env: Environment, repository: str, evidence: ThreadPoolExecutor) -> Cell:
    client = registries.client(settings, env)
    listed = client.list_tags(repository)  # also says which digests have signatures and attestations at all
    now = serving(client, repository, listed)
    if now is None:
        return Cell(env)
    digest, version, build = now
    ref = ImageRef(settings.env(env).registry, repository, digest=digest)
    # the attestations are read beside the signature (SBOMs, megabytes each, never: status does not show them)
    shown = None
    if cosign.attestation_tag(digest) in listed:
        shown = evidence.submit(audit, settings, env, ref, (AttestationKind.PROMOTION, AttestationKind.SCAN,
                                                            AttestationKind.SMOKE))
    signed = cosign.signature_tag(digest) in listed and signing.verify_signature(settings, env, ref).ok
    scan, smoke, promoted = _summaries(env, digest, shown.result().valid if shown else ())
    return Cell(env, digest, version, build, signed, scan, smoke, promoted)


def collect(settings: Settings, images: Sequence[str] = ()) -> list[Row]:
    """A row per declared image (or per name given), each environment checked with its own key.

    Cells are read `CELLS_AT_ONCE` at a time; each reads its attestations beside its signature on a pool of its
    own (a cell waits for those reads, which wait for nothing: the two pools cannot starve each other).
    """
    declared = {i.name: i.version for i in load_declarations(settings.root).images}
    names = list(images) or list(declared)
    with ThreadPoolExecutor(max_workers=CELLS_AT_ONCE, thread_name_prefix="moka-status") as pool, \
            ThreadPoolExecutor(max_workers=CELLS_AT_ONCE, thread_name_prefix="moka-evidence") as evidence:
        # tokens and public keys (a KMS key: one cosign run) once per environment, side by side, before the cells
        list(pool.map(lambda env: (registries.credentials(settings, env), keys.verifier(settings, env)), Environment))
        futures = {(name, env): pool.submit(_cell, settings, env, settings.repository(name), evidence)
                   for name in names for env in Environment}
        rows = []
        for name in names:
            cells = tuple(futures[(name, env)].result() for env in Environment)
            rows.append(Row(name, declared.get(name), cells, tuple(notes(declared.get(name), cells))))
    return rows
