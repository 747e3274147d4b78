"""Tag mutability: the one rule shared by ECR's exclusion filters and the local registry gate."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moka_images.models import Digest
from moka_images.plan.graph import BuildTag, rolling_tags
from moka_images.plan.tags import (
    IMMUTABLE_FILTERS,
    MUTABILITY,
    TagKind,
    exclusion_filters,
    is_cosign_tag,
    is_pointer,
    kind_of,
    tag_is_mutable,
    wildcard_match,
)

HEX = "0123456789abcdef"
versions = st.builds(
    lambda ma, mi, pa, pre: f"{ma}.{mi}.{pa}" + (f"-{pre}" if pre else ""),
    st.integers(0, 99), st.integers(0, 99), st.integers(0, 999),
    st.sampled_from([None, "rc.1", "beta.2", "alpha", "rc.10", "dev.3", "pre"]),
)
hexes = st.text(HEX, min_size=64, max_size=64)


def digest(seed: str) -> Digest:
    return Digest("sha256:" + hashlib.sha256(seed.encode()).hexdigest())


@pytest.mark.parametrize(("pattern", "tag", "matches"), [
    ("*-*-*", "1.2.3-0123456789-abcdefabcd", True),
    ("*-*-*", "1.2.3-rc.1", False),
    ("*-*-*", "--", True),  # `*` also matches nothing
    ("sha256-*", "sha256-", True),
    ("latest", "latest", True),
    ("latest", "Latest", False),  # case-sensitive
    ("latest", "latest2", False),  # the whole tag
    ("1.*", "1x2", False),  # `.` is a dot, not any character
    ("1.*", "1.2", True),
])
def test_wildcards_follow_ecr(pattern: str, tag: str, matches: bool) -> None:
    assert wildcard_match(pattern, tag) is matches


@given(versions, hexes, hexes)
def test_build_and_per_arch_tags_are_immutable(version: str, own: str, base: str) -> None:
    build = BuildTag.make(version, own, digest(base))
    assert not tag_is_mutable(str(build))
    for arch in ("amd64", "arm64"):
        assert not tag_is_mutable(f"{build}-{arch}")


@given(versions)
def test_rolling_tags_move(version: str) -> None:
    for tag in rolling_tags(version):
        assert tag_is_mutable(tag)
        assert is_pointer(tag)


@given(hexes, st.sampled_from(["", ".sig", ".att", ".sbom"]))
def test_cosign_tags_move_but_are_not_pointers(hex64: str, suffix: str) -> None:
    tag = f"sha256-{hex64}{suffix}"
    assert tag_is_mutable(tag)
    assert is_cosign_tag(tag)
    assert not is_pointer(tag)


def test_the_stated_price_a_hyphenated_prerelease_is_immutable() -> None:
    assert not tag_is_mutable("1.3.0-rc-1")
    assert tag_is_mutable("1.3.0-rc.1")


def test_exclusion_filters_are_what_ecr_takes() -> None:
    assert MUTABILITY == "MUTABLE_WITH_EXCLUSION"
    assert exclusion_filters() == [{"filterType": "WILDCARD", "filter": f} for f in IMMUTABLE_FILTERS]
    with pytest.raises(ValueError, match="1 to 5"):
        exclusion_filters(("a*",) * 6)
    with pytest.raises(ValueError, match="not an ECR wildcard filter"):
        exclusion_filters(("a?b",))


@pytest.mark.parametrize(("tag", "kind"), [
    ("latest", TagKind.ROLLING), ("1.2.3", TagKind.ROLLING), ("1.2", TagKind.ROLLING),
    ("1.2.3-rc.1", TagKind.ROLLING),
    ("1.2.3-0123456789-abcdefabcd", TagKind.BUILD),  # build tags are valid semver too, but name builds
    ("1.2.3-0123456789-abcdefabcd-arm64", TagKind.PLATFORM_BUILD),
    ("1.2.3-0123456789-abcdefabcd-amd64", TagKind.PLATFORM_BUILD),
    ("sha256-" + "a" * 64 + ".sig", TagKind.COSIGN), ("sha256-" + "a" * 64 + ".att", TagKind.COSIGN),
    ("main", TagKind.OTHER), ("exp1", TagKind.OTHER),
])
def test_every_tag_has_one_kind(tag: str, kind: TagKind) -> None:
    assert kind_of(tag) is kind
