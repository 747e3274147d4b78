"""What a registry holds of an image: its build and rolling tags, the source of a promotion, its evidence."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import semver

from moka_images import log
from moka_images.adapters import cosign
from moka_images.adapters.registry import Registry
from moka_images.config.settings import Settings
from moka_images.errors import ConfigError
from moka_images.models import Digest, Environment, ImageRef
from moka_images.plan.graph import BuildTag
from moka_images.plan.promotion import Candidate, Inventory
from moka_images.stages.images import created_at, platforms_of, read_inventory, resolve


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


def find_source(settings: Settings, env: Environment, spec: str, client: Registry,
                inventory: Inventory | None = None) -> Source:
    """`IMAGE[:VERSION|:BUILD-TAG|@DIGEST]` in `env`, with the build tag that names its digest there."""
    resolved = resolve(settings, env, spec, client)
    digest = resolved.ref.digest
    assert digest is not None
    if resolved.tag is not None:  # a name (and tag) is resolved once, here, and the digest is what moves
        log.info(f"{spec} resolved to {digest} ({resolved.ref.name}:{resolved.tag} in {env})")
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
    candidate = Candidate(resolved.name, digest, build, created_at(manifest))
    return Source(resolved.name, env, resolved.ref, candidate, tuple(sorted(str(p) for p in platforms_of(client, repository, manifest))))


def predicate_key(predicate_type: str, predicate: Mapping[str, Any]) -> str:
    """A stable fingerprint of a predicate, to find the attestation that carries it."""
    return hashlib.sha256(json.dumps([predicate_type, predicate], sort_keys=True).encode()).hexdigest()


def attestation_digests(client: Registry, repository: str, digest: Digest,
                        predicate_types: Collection[str]) -> dict[str, str]:
    """Digest of the DSSE envelope holding each attestation of `predicate_types` on `digest`, by predicate
    fingerprint: the evidence. Layers cosign annotated with another type are not fetched."""
    tag = cosign.attestation_tag(digest)
    found = client.head_manifest(repository, tag)
    if found is None:
        return {}
    out = {}
    for layer in client.get_manifest(repository, str(found)).json.get("layers", []):
        said = (layer.get("annotations") or {}).get(cosign.PREDICATE_TYPE_ANNOTATION)
        if said and said not in predicate_types:
            continue
        try:
            envelope = json.loads(client.get_blob(repository, Digest(layer["digest"])))
            statement = json.loads(base64.b64decode(envelope["payload"]))
            out[predicate_key(statement["predicateType"], statement["predicate"])] = layer["digest"]
        except (KeyError, TypeError, ValueError, binascii.Error):
            continue  # not an in-toto attestation; the verified reading reports it
    return out
