"""ECR lifecycle policies from settings. Pure: the policy is a value computed from numbers and tag lists.

What a policy does, in ECR's priority order (an image a rule's tags select cannot be expired by a later rule):

1. keep, forever, every image a protected tag points at: the rolling tags an environment currently uses that
   rule 2 would otherwise select (one rule per tag: ECR ANDs the patterns of one rule);
2. per pre-release identifier (`rc`, `beta`, ...), expire all but the newest `keep_prerelease` builds;
3. expire untagged manifests pushed more than `expire_untagged_days` ago (orphans: ECR does not expire a
   manifest an index still references).

Pre-release tags are told from final build tags by wildcard alone: `*.*.*-rc*` never matches
`1.2.3-<hex10>-<hex10>[-arch]` because an identifier here must hold a letter that is not a hex digit and must
not begin an architecture name. ECR counts manifests, not builds: a build is its index plus one manifest per
platform, so the kept count is `keep_prerelease * images_per_build`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from moka_images.plan.tags import is_pointer, wildcard_match

PRERELEASE_IDENTIFIERS: tuple[str, ...] = ("alpha", "beta", "rc", "pre", "dev", "snapshot")
NEVER = 1_000_000  # a count no repository reaches (ECR's per-repository image quota is far lower)
MAX_WILDCARDS = 4  # per tag pattern
MAX_POLICY_CHARS = 30720  # lifecyclePolicyText
_ARCHES = ("amd64", "arm64")
_IDENTIFIER_RE = re.compile(r"^[0-9A-Za-z-]+$")


def prerelease_pattern(identifier: str) -> str:
    """The tag pattern of one pre-release identifier's builds and tags: `*.*.*-rc*`."""
    if not _IDENTIFIER_RE.match(identifier) or not re.search(r"[g-zG-Z]", identifier):
        raise ValueError(f"pre-release identifier {identifier!r} must hold a letter beyond a-f, or its "
                         f"pattern would also match the hex digits of final build tags")
    if any(arch.startswith(identifier.lower()) for arch in _ARCHES):
        raise ValueError(f"pre-release identifier {identifier!r} would match per-arch build tags")
    return f"*.*.*-{identifier}*"


def protected_tags(tags: Iterable[str], identifiers: Iterable[str] = PRERELEASE_IDENTIFIERS) -> list[str]:
    """Rolling tags in `tags` that a pre-release rule would select: the ones a policy must protect."""
    patterns = [prerelease_pattern(i) for i in identifiers]
    return sorted({t for t in tags if is_pointer(t) and any(wildcard_match(p, t) for p in patterns)})


def lifecycle_policy(*, expire_untagged_days: int, keep_prerelease: int, images_per_build: int,
                     protected: Iterable[str] = (),
                     identifiers: Iterable[str] = PRERELEASE_IDENTIFIERS) -> dict[str, Any]:
    """The lifecycle policy document (see the module's docstring for what each rule does)."""
    if expire_untagged_days < 1 or keep_prerelease < 1 or images_per_build < 1:
        raise ValueError("lifecycle counts and days must be positive")
    rules: list[dict[str, Any]] = []

    def add(description: str, selection: dict[str, Any]) -> None:
        rules.append({"rulePriority": len(rules) + 1, "description": description, "selection": selection,
                      "action": {"type": "expire"}})

    for tag in sorted(set(protected)):
        if tag.count("*") > MAX_WILDCARDS:
            raise ValueError(f"protected pattern {tag!r} has more than {MAX_WILDCARDS} wildcards")
        add(f"keep {tag}: in use", {"tagStatus": "tagged", "tagPatternList": [tag],
                                    "countType": "imageCountMoreThan", "countNumber": NEVER})
    for identifier in dict.fromkeys(identifiers):
        add(f"keep the newest {keep_prerelease} {identifier} pre-release builds",
            {"tagStatus": "tagged", "tagPatternList": [prerelease_pattern(identifier)],
             "countType": "imageCountMoreThan", "countNumber": keep_prerelease * images_per_build})
    add(f"expire untagged manifests after {expire_untagged_days} days",
        {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
         "countNumber": expire_untagged_days})
    policy = {"rules": rules}
    if len(policy_text(policy)) > MAX_POLICY_CHARS:
        raise ValueError(f"{len(rules)} rules exceed ECR's {MAX_POLICY_CHARS} characters of lifecycle policy")
    return policy


def policy_text(policy: dict[str, Any]) -> str:
    """The canonical JSON text of a policy (also how two policies are compared)."""
    return json.dumps(policy, sort_keys=True, separators=(",", ":"))

