"""What a registry holds of an image: its build and rolling tags, the source of a promotion, its evidence."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import semver

from moka_images.adapters.registry import Manifest, RegistryClient
from moka_images.config.settings import Settings
from moka_images.errors import ConfigError
from moka_images.models import Digest, Environment, ImageRef, Platform
from moka_images.plan.graph import BuildTag
from moka_images.plan.promotion import (
    Candidate,
    Inventory,
)
from moka_images.stages.images import resolve

CREATED = "org.opencontainers.image.created"


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
