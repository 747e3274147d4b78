"""Which findings `rescan` calls new. Pure parts only (what it treats as served: `plan.tags.kind_of`)."""

from __future__ import annotations

from moka_images.findings import DbVersion, ScanReport, SecretFinding, Severity, VulnFinding
from moka_images.models import Digest, Platform
from moka_images.stages.rescan import finding_keys, new_findings

AMD, ARM = Platform("linux", "amd64"), Platform("linux", "arm64")
D = Digest("sha256:" + "1" * 64)
DB = DbVersion("sha256:" + "2" * 64, "2026-11-01T00:00:00Z", "sha256:" + "3" * 64, "2026-11-01T00:00:00Z")


def _report(platform: Platform, *ids: str, secret: bool = False) -> ScanReport:
    secrets = (SecretFinding("aws-access-key-id", "AWS", Severity.CRITICAL, "/etc/creds", 2),) if secret else ()
    return ScanReport(platform, D, DB, tuple(VulnFinding(i, "jq", "1.6", None, Severity.HIGH) for i in ids), secrets)


def test_new_findings_are_those_the_last_scan_of_each_platform_did_not_have() -> None:
    before = [_report(AMD, "CVE-1"), _report(ARM, "CVE-1")]
    now = [_report(AMD, "CVE-1", "CVE-2"), _report(ARM, "CVE-1", secret=True)]
    assert new_findings(now, before) == ("CVE-2 jq (linux/amd64)", "secret aws-access-key-id /etc/creds (linux/arm64)")
    assert new_findings(now, now) == ()


def test_without_a_past_scan_nothing_can_be_called_new() -> None:
    assert new_findings([_report(AMD, "CVE-1")], [None]) is None
    assert new_findings([], []) is None


def test_finding_keys_name_the_platform() -> None:
    assert finding_keys(_report(ARM, "CVE-9")) == {"CVE-9 jq (linux/arm64)"}
