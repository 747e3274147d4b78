"""From what a person types (`spark-3.5`, `data-eng/etl-jobs:1.2.0`, `spark-3.5@sha256:...`) to a digest."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from moka_images.adapters.registry import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, Manifest, Registry
from moka_images.config.settings import Settings
from moka_images.errors import ConfigError
from moka_images.models import Digest, Environment, ImageRef, Platform, is_valid_repository, is_valid_tag
from moka_images.plan.graph import BuildTag
from moka_images.plan.promotion import Inventory
from moka_images.plan.tags import TagKind, kind_of
from moka_images.stages import registries

DEFAULT_TAG = "latest"
READS_AT_ONCE = 8
CREATED = "org.opencontainers.image.created"


@dataclass(frozen=True)
class ResolvedImage:
    """An image in one environment's registry, pinned to the digest its tag pointed at when resolved."""

    ref: ImageRef  # registry/repository@digest
    name: str  # the image's name in manifests/, e.g. spark-3.5
    tag: str | None  # None when given by digest


def parse_spec(spec: str) -> tuple[str, str | None, Digest | None]:
    """Split `IMAGE[:VERSION]` or `IMAGE@sha256:...` into name, tag and digest (tag `latest` if neither)."""
    name, tag, digest = spec, None, None
    if "@" in spec:
        name, raw = spec.split("@", 1)
        try:
            digest = Digest(raw)
        except ValueError:
            raise ConfigError(f"{spec!r}: {raw!r} is not a digest", "write IMAGE@sha256:<64 hex>") from None
    elif ":" in spec.rsplit("/", 1)[-1]:
        name, tag = spec.rsplit(":", 1)
    else:
        tag = DEFAULT_TAG
    if not name or not is_valid_repository(name):
        raise ConfigError(f"{spec!r} is not an image name", "names look like spark-3.5 or data-eng/etl-jobs")
    if tag is not None and not is_valid_tag(tag):
        raise ConfigError(f"{spec!r}: {tag!r} is not a valid tag", "versions look like 1.2.3")
    return name, tag, digest


def resolve(settings: Settings, environment: Environment, spec: str,
            client: Registry | None = None) -> ResolvedImage:
    """Look `spec` up in `environment`'s registry; a ConfigError naming nearby tags if it is not there."""
    name, tag, digest = parse_spec(spec)
    repository = settings.repository(name)
    client = client or registries.client(settings, environment)
    found = client.head_manifest(repository, str(digest or tag))
    if found is None:
        where = f"{settings.env(environment).registry}/{repository}"
        known = sorted(t for t in client.list_tags(repository) if not t.startswith("sha256-"))
        hint = f"tags there: {', '.join(known[-8:])}" if known else f"nothing is pushed to {where} yet"
        raise ConfigError(f"{spec} is not in {environment} ({where})", hint)
    ref = ImageRef(settings.env(environment).registry, repository, None, found)
    return ResolvedImage(ref, name, tag)


def platforms_of(client: Registry, repository: str, manifest: Manifest) -> dict[Platform, Digest]:
    """The platforms of an image: an index's entries, or a single manifest's own (read from its config)."""
    if manifest.is_index:
        return manifest.platforms()
    config = json.loads(client.get_blob(repository, manifest.blobs()[0]))
    return {Platform.parse(f"{config.get('os')}/{config.get('architecture')}"): manifest.digest}


def index_platforms(client: Registry, ref: ImageRef) -> tuple[ImageRef, dict[Platform, Digest]]:
    """The ref pinned to its digest, and the per-platform digests of its index (or of its one manifest)."""
    manifest = client.get_manifest(ref.repository, str(ref.digest or ref.tag or "latest"))
    return ref.with_digest(manifest.digest), platforms_of(client, ref.repository, manifest)


def _tracked(tag: str) -> bool:
    """Tags promotion reads and moves: build tags and rolling tags (not cosign's, not per-platform build tags)."""
    return kind_of(tag) in (TagKind.BUILD, TagKind.ROLLING)


def created_at(manifest: Manifest) -> str | None:
    """When the image was built, as its index says (None where it cannot say: a Docker manifest list)."""
    return (manifest.json.get("annotations") or {}).get(CREATED)


def read_inventory(client: Registry, repository: str, *, tags: Sequence[str] | None = None,
                   with_created: bool = True) -> Inventory:
    """Build and rolling tags of a repository and where they point, with the build times of rolled digests.

    `tags` narrows the tags looked up (default: every build and rolling tag listed); without `with_created` the
    build times are not read (a manifest read per rolled digest). The tags are looked up `READS_AT_ONCE` at a
    time: a repository of a long-lived image holds hundreds.
    """
    tracked = [t for t in (client.list_tags(repository) if tags is None else tags) if _tracked(t)]
    with ThreadPoolExecutor(max_workers=READS_AT_ONCE, thread_name_prefix="moka-inventory") as pool:
        found = dict(zip(tracked, pool.map(lambda t: client.head_manifest(repository, t), tracked), strict=True))
        pointed = {t: d for t, d in found.items() if d is not None}
        rolled = sorted({d for t, d in pointed.items() if BuildTag.parse(t) is None}, key=str) if with_created else []
        manifests = pool.map(lambda d: client.get_manifest(repository, str(d)), rolled)
        created = {d: c for d, m in zip(rolled, manifests, strict=True) if (c := created_at(m))}
    return Inventory(pointed, created)


def write_index(client: Registry, repository: str, tag: str, children: Sequence[Digest]) -> Digest:
    """One multi-platform index over single-platform manifests already in `repository`, pushed under `tag`.

    Entries go in platform order, so every index of the same children is the same bytes. Docker children (what
    the engine's docker driver pushes) get a Docker manifest list, which has no annotations: the OCI labels in
    each platform's config carry the provenance instead; OCI children get an OCI index.
    """
    entries: dict[Platform, dict[str, object]] = {}
    for digest in children:
        manifest = client.get_manifest(repository, str(digest))
        (platform, _), = platforms_of(client, repository, manifest).items()
        if platform in entries:
            raise ConfigError(f"two manifests for {platform} in one index of {repository}:{tag}: "
                              f"{entries[platform]['digest']} and {digest}", "an index holds one manifest per platform")
        entries[platform] = {"mediaType": manifest.media_type, "size": len(manifest.raw), "digest": str(digest),
                             "platform": {"architecture": platform.arch, "os": platform.os}}
    docker = all(e["mediaType"] == DOCKER_MANIFEST for e in entries.values())
    media_type = DOCKER_LIST if docker else OCI_INDEX
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": [entries[p] for p in sorted(entries)]}
    return client.put_manifest(repository, tag, json.dumps(doc, indent=2).encode(), media_type)


BASE_NAME = "org.opencontainers.image.base.name"


def base_repository(settings: Settings, client: Registry, repository: str, digest: Digest) -> str | None:
    """The repository of the image's base when the base is one of ours (a team image's `spark-3.5`), from the
    `org.opencontainers.image.base.name` label the build puts in every platform's config; None for a base from
    elsewhere (`<registry host>/<path>`, as a base image's OS base) or an image without the label."""
    manifest = client.get_manifest(repository, str(digest))
    if manifest.is_index:  # every platform carries the same label: the first one's says it
        children = list(manifest.platforms().values())
        if not children:
            return None
        manifest = client.get_manifest(repository, str(children[0]))
    try:
        config = json.loads(client.get_blob(repository, Digest(manifest.json["config"]["digest"])))
        name = ((config.get("config") or {}).get("Labels") or {}).get(BASE_NAME)
    except (ValueError, KeyError, TypeError, AttributeError):  # not an image config we wrote: no hint
        return None
    if not isinstance(name, str):
        return None
    first, _, rest = name.partition("/")
    # Docker's rule: a first component with a dot or a port, or `localhost`, is a registry host.
    if rest and ("." in first or ":" in first or first == "localhost"):
        return None
    return settings.repository(name) if is_valid_repository(name) else None
