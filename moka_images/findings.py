"""What a scan found, per platform: vulnerabilities, secrets and licences, as frozen values."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import Any

from moka_images.models import Digest, Platform


class Severity(IntEnum):
    """trivy's severities, ordered so that policies can compare them."""

    UNKNOWN = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str | None) -> Severity:
        """A severity from trivy's spelling; anything unexpected counts as UNKNOWN."""
        return cls.__members__.get((text or "UNKNOWN").upper(), cls.UNKNOWN)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class VulnFinding:
    """One vulnerable package: fixed_version is what would unblock it (None: no fix exists yet)."""

    id: str
    package: str
    installed_version: str
    fixed_version: str | None
    severity: Severity
    title: str = ""
    target: str = ""  # what trivy scanned: the OS ("debian 12.10") or a file such as a JAR
    package_path: str | None = None


@dataclass(frozen=True)
class SecretFinding:
    """A secret in a file of the image; secrets always block."""

    rule_id: str
    title: str
    severity: Severity
    path: str
    line: int


@dataclass(frozen=True)
class LicenseFinding:
    """The licence of one package (or file)."""

    name: str
    package: str
    category: str
    path: str = ""


@dataclass(frozen=True)
class DbVersion:
    """The trivy databases a scan used: the mirror artifacts' digests and their build times."""

    vuln_digest: str
    vuln_updated_at: str
    java_digest: str
    java_updated_at: str

    @property
    def key(self) -> str:
        """Identity of the pair, for cache keys."""
        return f"{self.vuln_digest}+{self.java_digest}"


@dataclass(frozen=True)
class ScanReport:
    """One platform of one image, scanned with one DB version."""

    platform: Platform
    digest: Digest  # the platform manifest digest
    db: DbVersion
    vulnerabilities: tuple[VulnFinding, ...] = ()
    secrets: tuple[SecretFinding, ...] = ()
    licenses: tuple[LicenseFinding, ...] = ()
    os: str = ""
    package_count: int = 0
    trivy_version: str = ""

    def counts(self) -> dict[str, int]:
        """Vulnerabilities by severity name, plus secrets."""
        out = {s.name: 0 for s in sorted(Severity, reverse=True)}
        for v in self.vulnerabilities:
            out[v.severity.name] += 1
        out["SECRETS"] = len(self.secrets)
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (the scan cache's file format)."""
        doc = asdict(self)
        doc["platform"], doc["digest"] = str(self.platform), str(self.digest)
        for group in ("vulnerabilities", "secrets"):
            for item in doc[group]:
                item["severity"] = item["severity"].name
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ScanReport:
        """The inverse of to_json."""
        return cls(
            platform=Platform.parse(doc["platform"]),
            digest=Digest(doc["digest"]),
            db=DbVersion(**doc["db"]),
            vulnerabilities=tuple(VulnFinding(**{**v, "severity": Severity.parse(v["severity"])})
                                  for v in doc["vulnerabilities"]),
            secrets=tuple(SecretFinding(**{**s, "severity": Severity.parse(s["severity"])}) for s in doc["secrets"]),
            licenses=tuple(LicenseFinding(**lic) for lic in doc["licenses"]),
            os=doc.get("os", ""),
            package_count=doc.get("package_count", 0),
            trivy_version=doc.get("trivy_version", ""),
        )
