"""Lifecycle policies: which rule owns which image, as ECR's evaluator decides it, and what moto accepts."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto.ecr.policy_validation import EcrLifecyclePolicyValidator

from moka_images.models import Digest
from moka_images.plan.graph import BuildTag
from moka_images.plan.lifecycle import (
    MAX_POLICY_CHARS,
    NEVER,
    PRERELEASE_IDENTIFIERS,
    lifecycle_policy,
    policy_text,
    prerelease_pattern,
    protected_tags,
)
from moka_images.plan.tags import wildcard_match

HEX = "0123456789abcdef"


def build(version: str, seed: str = "x") -> str:
    return str(BuildTag.make(version, hashlib.sha256(seed.encode()).hexdigest(),
                             Digest("sha256:" + hashlib.sha256(seed[::-1].encode()).hexdigest())))


def owner(policy: dict[str, Any], tags: list[str]) -> dict[str, Any] | None:
    """The rule that owns an image with `tags`: the highest-priority one whose tag selection takes it (ECR:
    an image a rule selects cannot be expired by a lower-priority rule; a rule's patterns are ANDed)."""
    for rule in sorted(policy["rules"], key=lambda r: r["rulePriority"]):
        sel = rule["selection"]
        if sel["tagStatus"] == "untagged" and not tags:
            return rule
        if sel["tagStatus"] == "tagged" and tags and all(
                any(wildcard_match(p, t) for t in tags) for p in sel["tagPatternList"]):
            return rule
    return None


def policy(protected: tuple[str, ...] = ()) -> dict[str, Any]:
    return lifecycle_policy(expire_untagged_days=7, keep_prerelease=20, images_per_build=3,
                            protected=protected)


def test_rules_in_order_keep_then_prerelease_then_untagged() -> None:
    doc = policy(("1.3.0-rc.2", "1.3.0-rc.1"))
    rules = doc["rules"]
    assert [r["rulePriority"] for r in rules] == list(range(1, len(rules) + 1))
    assert [r["selection"]["tagPatternList"] for r in rules[:2]] == [["1.3.0-rc.1"], ["1.3.0-rc.2"]]
    assert all(r["selection"]["countNumber"] == NEVER for r in rules[:2])
    pre = rules[2:-1]
    patterns = [r["selection"]["tagPatternList"] for r in pre]
    assert patterns == [[f"*.*.*-{i}*"] for i in PRERELEASE_IDENTIFIERS]
    assert all(r["selection"]["countType"] == "imageCountMoreThan" for r in pre)
    assert all(r["selection"]["countNumber"] == 60 for r in pre)  # 20 builds of an index and two platforms
    assert rules[-1]["selection"] == {"tagStatus": "untagged", "countType": "sinceImagePushed",
                                      "countUnit": "days", "countNumber": 7}


def test_moto_accepts_the_policy() -> None:
    EcrLifecyclePolicyValidator(policy_text(policy(("1.3.0-rc.1",)))).validate()


def test_an_image_in_use_is_owned_by_a_keep_rule() -> None:
    doc = policy(("1.3.0-rc.1",))
    in_use = owner(doc, [build("1.3.0-rc.1"), "1.3.0-rc.1"])
    assert in_use is not None and in_use["selection"]["countNumber"] == NEVER
    superseded = owner(doc, [build("1.3.0-rc.1", "older")])
    assert superseded is not None and superseded["selection"]["tagPatternList"] == ["*.*.*-rc*"]
    assert owner(doc, [build("1.4.0-beta.1") + "-arm64"])["selection"]["tagPatternList"] == ["*.*.*-beta*"]
    assert owner(doc, [])["selection"]["tagStatus"] == "untagged"


@given(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99), st.text(HEX, min_size=3, max_size=12),
       st.sampled_from(["", "-amd64", "-arm64"]))
def test_no_rule_ever_takes_a_final_version(major: int, minor: int, patch: int, seed: str, arch: str) -> None:
    version = f"{major}.{minor}.{patch}"
    doc = policy()
    rolled = [build(version, seed), version, f"{major}.{minor}", "latest"]
    for tags in ([build(version, seed) + arch], rolled):
        assert owner(doc, tags) is None


def test_protected_tags_are_the_rolling_prerelease_tags() -> None:
    tags = [build("1.3.0-rc.1"), "1.3.0-rc.1", build("1.2.0"), "1.2.0", "1.2", "latest", "2.0.0-beta.1",
            "sha256-" + "a" * 64 + ".sig", build("2.0.0-beta.1") + "-amd64"]
    assert protected_tags(tags) == ["1.3.0-rc.1", "2.0.0-beta.1"]


@pytest.mark.parametrize("identifier", ["abc", "cafe", "a", "ar", "am", "r c"])
def test_identifiers_that_could_match_final_build_tags_are_refused(identifier: str) -> None:
    with pytest.raises(ValueError):
        prerelease_pattern(identifier)


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="positive"):
        lifecycle_policy(expire_untagged_days=0, keep_prerelease=1, images_per_build=3)
    with pytest.raises(ValueError, match="wildcards"):
        policy(("*a*b*c*d*",))
    with pytest.raises(ValueError, match=str(MAX_POLICY_CHARS)):
        policy(tuple(f"9.9.{n}-rc.1" for n in range(400)))


def test_policy_text_is_canonical() -> None:
    a, b = policy(("x-rc.1", "1.0.0-rc.1")), policy(("1.0.0-rc.1", "x-rc.1", "1.0.0-rc.1"))
    assert policy_text(a) == policy_text(b)
    assert json.loads(policy_text(a)) == a
