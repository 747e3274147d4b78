"""Which tags may move: one rule, shared by the ECR repositories and the local registry gate. Pure.

Decision. The tags this program writes fall in three classes:

- build tags `{version}-{own10}-{base10}` and their per-arch tags `{build tag}-{arch}`: the names of what was
  built. They must never move to another digest.
- rolling tags `1.2.3`, `1.2`, `latest` (and a pre-release's own `1.3.0-rc.1`): pointers that promotion and
  rollback move on purpose.
- cosign's `sha256-<hex>.sig|.att|.sbom`: rewritten every time a signature or an attestation is added.

A repository that is simply IMMUTABLE (or IMMUTABLE_WITH_EXCLUSION with only `sha256-*` excluded) would refuse
every rolling-tag move on real ECR. ECR's exclusion filters are at most five wildcards of `[0-9A-Za-z._*-]`
where `*` is the only wildcard, so "mutable = rolling" cannot be written down: `*.*` or `1.*` also match the
build tags, which start with the same version. What can be written down is the other side: every build tag
and per-arch tag has at least two hyphens, and no rolling or cosign tag does (semver `1.2.3-rc.1` has one).
So repositories are MUTABLE_WITH_EXCLUSION with the single immutable filter `*-*-*`:

    build / per-arch tags  -> immutable (ECR refuses to point them elsewhere)
    rolling and cosign tags -> mutable

The price, stated: a pre-release whose identifiers contain a hyphen (`1.3.0-rc-1`) gets an immutable rolling
tag, and a tag of a shape this program never writes (`foo`) is mutable. The local registry gate enforces the
very same rule through `tag_is_mutable`, so a push that real ECR would refuse is refused locally too.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cache

import semver

from moka_images.plan.graph import BuildTag

MUTABILITY = "MUTABLE_WITH_EXCLUSION"
IMMUTABLE_FILTERS: tuple[str, ...] = ("*-*-*",)  # tags matching any of these can never move
_FILTER_RE = re.compile(r"^[0-9A-Za-z._*-]{1,128}$")
MAX_FILTERS = 5


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    if not _FILTER_RE.match(pattern):
        raise ValueError(f"not an ECR wildcard filter: {pattern!r}")
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def wildcard_match(pattern: str, tag: str) -> bool:
    """ECR's wildcard filter semantics: the whole tag, case-sensitive, `*` for any run of characters."""
    return _compiled(pattern).fullmatch(tag) is not None


def tag_is_mutable(tag: str, filters: tuple[str, ...] = IMMUTABLE_FILTERS) -> bool:
    """Whether a repository with these immutable filters lets `tag` move to another digest."""
    return not any(wildcard_match(f, tag) for f in filters)


def exclusion_filters(filters: tuple[str, ...] = IMMUTABLE_FILTERS) -> list[dict[str, str]]:
    """The filters as ECR's `imageTagMutabilityExclusionFilters`."""
    if not 1 <= len(filters) <= MAX_FILTERS:
        raise ValueError(f"ECR takes 1 to {MAX_FILTERS} exclusion filters, not {len(filters)}")
    for f in filters:
        _compiled(f)
    return [{"filterType": "WILDCARD", "filter": f} for f in filters]


def is_cosign_tag(tag: str) -> bool:
    """cosign's signature, attestation and SBOM tags (and the referrers fallback tag): `sha256-<hex>...`."""
    return tag.startswith("sha256-")


def is_pointer(tag: str) -> bool:
    """A tag that moves on purpose (a rolling tag): mutable and not cosign's."""
    return tag_is_mutable(tag) and not is_cosign_tag(tag)


class TagKind(StrEnum):
    """What a tag names. The one taxonomy: promotion, rescan, status and the lifecycle rules all ask it."""

    BUILD = "build"  # `{version}-{own10}-{base10}`: one build, immutable
    PLATFORM_BUILD = "platform build"  # `{build tag}-{arch}`: one platform of a build, pushed before the index
    ROLLING = "rolling"  # `latest`, `X.Y.Z[-pre]`, `X.Y`: what an environment serves; moved on purpose
    COSIGN = "cosign"  # `sha256-<hex>.sig|.att|.sbom`: signatures and attestations
    OTHER = "other"  # no shape this program writes


_MINOR_RE = re.compile(r"^\d+\.\d+$")
_ARCH_RE = re.compile(r"^[a-z0-9]+$")


def kind_of(tag: str) -> TagKind:
    """Which kind of tag `tag` is (build tags are valid semver too: they are told apart first)."""
    if is_cosign_tag(tag):
        return TagKind.COSIGN
    if BuildTag.parse(tag) is not None:
        return TagKind.BUILD
    build, _, arch = tag.rpartition("-")
    if _ARCH_RE.match(arch) and BuildTag.parse(build) is not None:
        return TagKind.PLATFORM_BUILD
    if tag == "latest" or semver.Version.is_valid(tag) or _MINOR_RE.match(tag):
        return TagKind.ROLLING
    return TagKind.OTHER
