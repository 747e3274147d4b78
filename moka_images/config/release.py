"""The files that carry a release between jobs: the release (images by digest) and a promotion plan.

A release is what the pipeline verified: for each image its name, version, build tag, index digest and the
digest of each platform. A plan is a release decided for one target: every edge, gate, tag move and the
target's tags as they were seen. Both are JSON written by moka-images and read back strictly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from moka_images.config.validation import Strict, load

RELEASE_SCHEMA = "moka-images/release/v1"
PLAN_SCHEMA = "moka-images/promotion-plan/v1"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _digest(value: str) -> str:
    if not _DIGEST.match(value):
        raise ValueError(f"{value!r} is not a sha256 digest")
    return value


class ReleaseImage(Strict):
    """One image of a release, by digest."""

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    build_tag: str = Field(min_length=1)
    digest: str
    platforms: dict[str, str]

    _check_digest = field_validator("digest")(_digest)

    @field_validator("platforms")
    @classmethod
    def _platform_digests(cls, value: dict[str, str]) -> dict[str, str]:
        for digest in value.values():
            _digest(digest)
        return value


class Release(Strict):
    """The images the pipeline verified, in dependency order (bases before the team images on them)."""

    schema_: Literal["moka-images/release/v1"] = Field(alias="schema")
    verified_in: str = "test"
    images: list[ReleaseImage] = Field(min_length=1)
    outcomes: list[dict[str, Any]] = Field(default_factory=list)  # `pipeline --json` adds each phase's answer

    def to_json(self) -> dict[str, Any]:
        """As written to a release file."""
        return self.model_dump(by_alias=True)


class PlannedGate(Strict):
    """A gate's answer as the plan recorded it."""

    name: str
    passed: bool
    detail: str
    evidence: dict[str, Any] = Field(default_factory=dict)


class PlannedMove(Strict):
    """A tag the plan moves: from `old` (None: a new tag) to `new`."""

    tag: str
    old: str | None
    new: str


class PlannedImage(Strict):
    """One image of a plan: where it comes from, what was decided, and the target's tags as seen."""

    image: str
    repository: str
    source: str  # registry/repository@digest in the source environment
    destination: str
    build_tag: str
    created: str | None = None
    platforms: list[str]
    outcome: Literal["noop", "copy", "tag-move", "refused"]
    rollback: bool = False
    gates: list[PlannedGate]
    moves: list[PlannedMove]
    kept: list[str] = Field(default_factory=list)
    inventory: dict[str, str]  # the target's tags when the plan was made


class PromotionPlan(Strict):
    """A release decided for one target environment, to be shown, approved and applied as is."""

    schema_: Literal["moka-images/promotion-plan/v1"] = Field(alias="schema")
    made_at: str
    made_by: str
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    approval_required: bool
    images: list[PlannedImage] = Field(min_length=1)

    def to_json(self) -> dict[str, Any]:
        """As written to a plan file."""
        return self.model_dump(by_alias=True)


def load_release(path: Path) -> Release:
    """A release file, every problem at once with its field."""
    return load(Release, path)


def load_plan(path: Path) -> PromotionPlan:
    """A plan file, every problem at once with its field."""
    return load(PromotionPlan, path)
