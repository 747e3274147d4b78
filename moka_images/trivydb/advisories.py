"""The declarative advisory list the local trivy DB is built from (security/advisories.yaml)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from moka_images.config.validation import Strict, read
from moka_images.errors import ManifestError, ValidationProblem

Severity = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
SEVERITY_LEVEL = {"UNKNOWN": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}

# OS namespaces the builder knows how to describe (trivy matches them against /etc/os-release).
OS_NAMESPACES = ("debian 11", "debian 12", "debian 13")


class Affected(Strict):
    """One affected package: an OS source package with a fixed version, or a Maven artifact with ranges."""

    os: str | None = Field(default=None, description="trivy OS namespace, e.g. `debian 12`")
    ecosystem: Literal["maven"] | None = None
    package: str = Field(min_length=1, description="OS: source package name; maven: group:artifact")
    fixed_version: str | None = Field(default=None, description="OS only; omit when no fix exists")
    vulnerable_versions: list[str] = Field(default_factory=list, description="maven only, e.g. ['<3.5.2']")
    patched_versions: list[str] = Field(default_factory=list, description="maven only, e.g. ['3.5.2']")

    @model_validator(mode="after")
    def _one_kind(self) -> Affected:
        if (self.os is None) == (self.ecosystem is None):
            raise ValueError("give exactly one of `os` (e.g. debian 12) or `ecosystem` (maven)")
        if self.os is not None:
            if self.os not in OS_NAMESPACES:
                raise ValueError(f"unknown os {self.os!r}; known: {', '.join(OS_NAMESPACES)}")
            if self.vulnerable_versions or self.patched_versions:
                raise ValueError("OS packages take `fixed_version`, not version ranges")
        else:
            if ":" not in self.package:
                raise ValueError(f"maven package {self.package!r} must be group:artifact")
            if self.fixed_version is not None:
                raise ValueError("maven packages take `vulnerable_versions`/`patched_versions`")
            if not self.vulnerable_versions:
                raise ValueError("maven packages need `vulnerable_versions`")
        return self


class Vulnerability(Strict):
    """One vulnerability and the packages it affects."""

    id: str = Field(pattern=r"^(CVE-\d{4}-\d{4,}|GHSA(-[23456789cfghjmpqrvwx]{4}){3})$")
    severity: Severity
    title: str
    description: str = ""
    published: date | None = None
    references: list[str] = Field(default_factory=list)
    affects: list[Affected] = Field(min_length=1)


class AdvisoryFile(Strict):
    """security/advisories.yaml."""

    vulnerabilities: list[Vulnerability]

    @model_validator(mode="after")
    def _unique(self) -> AdvisoryFile:
        seen: set[str] = set()
        for v in self.vulnerabilities:
            if v.id in seen:
                raise ValueError(f"vulnerability {v.id} is listed twice")
            seen.add(v.id)
        return self


def load_advisories(path: Path, display: str | None = None) -> AdvisoryFile:
    """Read and validate the advisory list; every problem is reported at once."""
    shown = display or str(path)
    parsed, doc, problems = read(AdvisoryFile, path, shown)
    if parsed is None or doc is None:
        raise ManifestError(problems)
    problems = [
        ValidationProblem(shown, f"vulnerabilities.{i}.affects.{j}.package",
                          f"{a.package!r} is not a Debian source package name", "use the source name, e.g. glibc",
                          doc.line(("vulnerabilities", str(i), "affects", str(j), "package")))
        for i, v in enumerate(parsed.vulnerabilities) for j, a in enumerate(v.affects)
        if a.os and not re.match(r"^[a-z0-9][a-z0-9+.-]+$", a.package)
    ]
    if problems:
        raise ManifestError(problems)
    return parsed
