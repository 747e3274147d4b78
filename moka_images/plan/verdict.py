"""Judge scan reports against an environment's policy and exceptions. Pure: the clock is a parameter."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from moka_images.config.policies import Policy, PolicyException
from moka_images.findings import ScanReport, Severity, VulnFinding
from moka_images.models import Platform

FindingKind = Literal["vulnerability", "secret", "license"]


@dataclass(frozen=True)
class Judged:
    """One finding as the verdict sees it: where it is, what it is and what would clear it."""

    kind: FindingKind
    platform: Platform
    id: str  # vulnerability ID, secret rule or licence name
    package: str  # package name, or the file holding a secret
    severity: Severity
    installed_version: str = ""
    fixed_version: str | None = None
    reason: str = ""
    unblock: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form, for --json and the scan attestation."""
        return {
            "kind": self.kind, "platform": str(self.platform), "id": self.id, "package": self.package,
            "severity": self.severity.name, "installed_version": self.installed_version,
            "fixed_version": self.fixed_version, "reason": self.reason, "unblock": self.unblock,
        }


@dataclass(frozen=True)
class Waived:
    """A finding that would block, and the exception that lets it through."""

    finding: Judged
    exception: PolicyException


@dataclass(frozen=True)
class Expired:
    """An exception that matched findings of this image but is past its expiry, so it no longer counts."""

    exception: PolicyException
    findings: tuple[Judged, ...]

    @property
    def message(self) -> str:
        """What to tell the owner."""
        ex = self.exception
        return (f"exception for {ex.id} on {ex.image} (owner {ex.owner}) expired on {ex.expires}"
                f" and no longer counts")


@dataclass(frozen=True)
class Verdict:
    """The outcome: allowed only when nothing blocks."""

    environment: str
    image: str
    today: date
    blocking: tuple[Judged, ...]
    waived: tuple[Waived, ...]
    expired: tuple[Expired, ...]

    @property
    def allowed(self) -> bool:
        """Whether the image may enter the environment."""
        return not self.blocking

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form, for --json and the scan attestation."""
        return {
            "environment": self.environment,
            "image": self.image,
            "date": self.today.isoformat(),
            "allowed": self.allowed,
            "blocking": [f.to_json() for f in self.blocking],
            "waived": [{**w.finding.to_json(), "exception": _exception_json(w.exception)} for w in self.waived],
            "expired_exceptions": [{**_exception_json(e.exception), "message": e.message,
                                    "findings": [f.to_json() for f in e.findings]} for e in self.expired],
        }


def _exception_json(ex: PolicyException) -> dict[str, Any]:
    return {"id": ex.id, "image": ex.image, "reason": ex.reason, "owner": ex.owner,
            "expires": ex.expires.isoformat()}


def _vuln(report: ScanReport, v: VulnFinding, policy: Policy, environment: str) -> Judged | None:
    rules = policy.vulnerabilities
    limit = rules.with_fix if v.fixed_version else rules.without_fix
    if v.severity <= limit:
        return None
    if v.fixed_version:
        reason = f"{v.severity} with a fix available; {environment} allows at most {limit} when fixable"
        unblock = f"upgrade {v.package} to {v.fixed_version} or later"
    else:
        reason = f"{v.severity} with no fix available; {environment} allows at most {limit} when unfixable"
        unblock = f"no fix yet: remove {v.package}, or add an exception with an owner and expiry"
    return Judged("vulnerability", report.platform, v.id, v.package, v.severity, v.installed_version,
                  v.fixed_version, reason, unblock)


def _candidates(report: ScanReport, policy: Policy, environment: str) -> Iterable[Judged]:
    for v in report.vulnerabilities:
        judged = _vuln(report, v, policy, environment)
        if judged:
            yield judged
    for s in report.secrets:
        yield Judged("secret", report.platform, s.rule_id, s.path, s.severity, reason=f"{s.title} at {s.path}:{s.line}",
                     unblock=f"remove the secret from {s.path} (and rotate it): secrets always block")
    denied = {name.lower() for name in policy.licenses.deny}
    for lic in report.licenses:
        if lic.name.lower() in denied:
            yield Judged("license", report.platform, lic.name, lic.package, Severity.UNKNOWN,
                         reason=f"licence {lic.name} is denied in {environment}",
                         unblock=f"remove {lic.package} or replace it with a differently licensed package")


def judge(reports: Sequence[ScanReport], policy: Policy, exceptions: Sequence[PolicyException], *,
          environment: str, image: str, today: date) -> Verdict:
    """Every finding above the policy blocks unless an unexpired exception for its ID and image waives it.

    Only vulnerabilities can be waived: secrets and denied licences always block.
    """
    blocking: list[Judged] = []
    waived: list[Waived] = []
    expired: dict[PolicyException, list[Judged]] = {}
    relevant = [ex for ex in exceptions if ex.image in ("*", image)]
    for report in sorted(reports, key=lambda r: r.platform):
        for finding in _candidates(report, policy, environment):
            matches = [ex for ex in relevant if finding.kind == "vulnerability" and ex.covers(finding.id, image)]
            live = [ex for ex in matches if not ex.expired(today)]
            for ex in matches:
                if ex.expired(today):
                    expired.setdefault(ex, []).append(finding)
            if live:
                waived.append(Waived(finding, max(live, key=lambda ex: ex.expires)))
            else:
                blocking.append(finding)
    order = {"secret": 0, "license": 1, "vulnerability": 2}
    blocking.sort(key=lambda f: (order[f.kind], -f.severity, f.id, f.package, f.platform))
    return Verdict(environment, image, today, tuple(blocking), tuple(waived),
                   tuple(Expired(ex, tuple(found)) for ex, found in expired.items()))
