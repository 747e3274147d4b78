"""The OS base lock: which OS base image every build starts from, pinned by digest.

`moka-images dev up` seeds it locally; in production the mirror already holds the upstream image. Either way
the lock pins the digest, so a moving upstream tag never changes what is built without the lock changing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from moka_images.config.settings import Settings
from moka_images.errors import MokaError


@dataclass(frozen=True)
class OsBaseLock:
    """The OS base as pinned: reference in the mirror and its index digest."""

    reference: str
    digest: str
    platforms: dict[str, str]


def lock_path(settings: Settings) -> Path:
    """Where the OS base lock lives for this profile."""
    return settings.home / "locks" / f"os-base-{settings.profile}.json" if settings.profile != "local" \
        else settings.home / "locks" / "os-base.json"


def read_lock(settings: Settings) -> OsBaseLock:
    """The pinned OS base, or an error saying how to create it."""
    path = lock_path(settings)
    try:
        return OsBaseLock(**json.loads(path.read_text()))
    except FileNotFoundError:
        raise MokaError(f"the OS base is not seeded ({path} is missing)", "run `moka-images dev up`") from None
