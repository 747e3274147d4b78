"""Scan policies (policies/<env>.yaml) and their exceptions (policies/exceptions.yaml), strictly validated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from moka_images.config.validation import Strict, load, read
from moka_images.errors import ManifestError
from moka_images.findings import Severity

SeverityName = Literal["UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
EXCEPTIONS_FILE = "exceptions.yaml"


class VulnerabilityRules(Strict):
    """The highest severity an image may carry into the environment, with and without a fix available."""

    max_severity_with_fix: SeverityName = Field(description="a fixable finding above this blocks")
    max_severity_without_fix: SeverityName = Field(description="an unfixable finding above this blocks")

    @property
    def with_fix(self) -> Severity:
        """max_severity_with_fix as a comparable value."""
        return Severity[self.max_severity_with_fix]

    @property
    def without_fix(self) -> Severity:
        """max_severity_without_fix as a comparable value."""
        return Severity[self.max_severity_without_fix]


class LicenseRules(Strict):
    """Licences (SPDX identifiers, compared case-insensitively) that block an image."""

    deny: list[str] = Field(default_factory=list)

    @field_validator("deny")
    @classmethod
    def _not_blank(cls, value: list[str]) -> list[str]:
        if any(not item.strip() for item in value):
            raise ValueError("licence names must not be blank")
        return value


class Policy(Strict):
    """What an environment accepts. Secrets always block: there is deliberately no setting for them."""

    vulnerabilities: VulnerabilityRules
    licenses: LicenseRules = Field(default_factory=LicenseRules)


class PolicyException(Strict):
    """A waiver of one vulnerability for one image (or all), owned by someone, until a date."""

    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9._:-]+$", description="vulnerability ID, e.g. CVE-2024-1234")
    image: str = Field(min_length=1, description="image name as in manifests/, or * for every image")
    reason: str = Field(min_length=1)
    owner: str = Field(min_length=1, description="who answers for this waiver")
    expires: date = Field(description="last day the waiver counts (YYYY-MM-DD)")

    def covers(self, vuln_id: str, image: str) -> bool:
        """Whether this waiver is about `vuln_id` in `image` (expiry aside)."""
        return self.id == vuln_id and self.image in ("*", image)

    def expired(self, today: date) -> bool:
        """A waiver counts through its expiry day and not after."""
        return today > self.expires

    @field_validator("reason", "owner", "image")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class ExceptionFile(Strict):
    """policies/exceptions.yaml."""

    exceptions: list[PolicyException] = Field(default_factory=list)


def load_policy(path: Path, display: str | None = None) -> Policy:
    """Read one environment's policy; ManifestError names the file and every bad field."""
    return load(Policy, path, display)


def load_exceptions(path: Path, display: str | None = None) -> tuple[PolicyException, ...]:
    """Read the exception list; an absent file means no exceptions."""
    if not path.exists():
        return ()
    return tuple(load(ExceptionFile, path, display).exceptions)


def exceptions_path(policy_path: Path) -> Path:
    """The exceptions file that sits beside a policy file."""
    return policy_path.parent / EXCEPTIONS_FILE


@dataclass(frozen=True)
class Rules:
    """What judges images entering an environment: its policy and the waivers beside it."""

    policy: Policy
    exceptions: tuple[PolicyException, ...]


def load_rules(policy_path: Path, root: Path) -> Rules:
    """Read a policy and the exceptions beside it (files shown relative to `root`); ManifestError with every
    problem of both. Commands call this before any work, so a broken policy stops them before they start."""
    exc_path = exceptions_path(policy_path)
    policy, _, problems = read(Policy, policy_path, _shown(root, policy_path))
    waivers: ExceptionFile | None = ExceptionFile()  # an absent file means no waivers
    if exc_path.exists():
        waivers, _, bad = read(ExceptionFile, exc_path, _shown(root, exc_path))
        problems += bad
    if policy is None or waivers is None:
        raise ManifestError(problems)
    return Rules(policy, tuple(waivers.exceptions))


def _shown(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
