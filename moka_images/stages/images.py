"""From what a person types (`spark-3.5`, `data-eng/etl-jobs:1.2.0`, `spark-3.5@sha256:...`) to a digest."""

from __future__ import annotations

from dataclasses import dataclass

from moka_images.adapters.registry import RegistryClient
from moka_images.config.settings import Settings
from moka_images.errors import ConfigError
from moka_images.models import Digest, Environment, ImageRef, is_valid_repository, is_valid_tag
from moka_images.stages import registries

DEFAULT_TAG = "latest"


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
            client: RegistryClient | None = None) -> ResolvedImage:
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
