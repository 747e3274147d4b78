"""judge(): thresholds with and without a fix, waivers, expiry (by passing `today`), secrets and licences."""

from __future__ import annotations

from datetime import date

import pytest

from moka_images.config.policies import Policy, PolicyException
from moka_images.findings import DbVersion, LicenseFinding, ScanReport, SecretFinding, Severity, VulnFinding
from moka_images.models import ALL_PLATFORMS, Digest, Platform
from moka_images.plan.verdict import judge

AMD64, ARM64 = ALL_PLATFORMS
DB = DbVersion("sha256:" + "1" * 64, "2026-01-01T00:00:00Z", "sha256:" + "2" * 64, "2026-01-01T00:00:00Z")
POLICY = Policy.model_validate({"vulnerabilities": {"max_severity_with_fix": "MEDIUM",
                                                    "max_severity_without_fix": "HIGH"},
                                "licenses": {"deny": ["AGPL-3.0"]}})
TODAY = date(2026, 6, 1)


def _vuln(severity: str, fixed: str | None = "2.0", vid: str = "CVE-2099-0001", pkg: str = "jq") -> VulnFinding:
    return VulnFinding(vid, pkg, "1.0", fixed, Severity[severity])


def _report(*vulns: VulnFinding, platform: Platform = AMD64, secrets: tuple = (), licenses: tuple = ()) -> ScanReport:
    return ScanReport(platform, Digest("sha256:" + platform.arch[0] * 64), DB, tuple(vulns), secrets, licenses)


def _exception(expires: date, vid: str = "CVE-2099-0001", image: str = "spark") -> PolicyException:
    return PolicyException(id=vid, image=image, reason="tracked", owner="team@example.com", expires=expires)


def _judge(reports: list[ScanReport], exceptions: tuple = (), today: date = TODAY, image: str = "spark"):
    return judge(reports, POLICY, exceptions, environment="staging", image=image, today=today)


@pytest.mark.parametrize(("severity", "fixed", "blocks"), [
    ("LOW", "2.0", False),
    ("MEDIUM", "2.0", False),  # at the limit is allowed
    ("HIGH", "2.0", True),
    ("CRITICAL", "2.0", True),
    ("MEDIUM", None, False),
    ("HIGH", None, False),  # without a fix the limit is HIGH
    ("CRITICAL", None, True),
    ("UNKNOWN", None, False),
])
def test_thresholds_depend_on_whether_a_fix_exists(severity: str, fixed: str | None, blocks: bool) -> None:
    verdict = _judge([_report(_vuln(severity, fixed))])
    assert verdict.allowed is not blocks
    assert len(verdict.blocking) == int(blocks)


def test_a_blocking_finding_says_where_it_is_and_what_unblocks_it() -> None:
    verdict = _judge([_report(_vuln("CRITICAL", "1.7.1-1")), _report(_vuln("CRITICAL", "1.7.1-1"), platform=ARM64)])
    assert [(f.platform, f.id, f.package, f.installed_version, f.fixed_version) for f in verdict.blocking] == [
        (AMD64, "CVE-2099-0001", "jq", "1.0", "1.7.1-1"), (ARM64, "CVE-2099-0001", "jq", "1.0", "1.7.1-1")]
    assert verdict.blocking[0].unblock == "upgrade jq to 1.7.1-1 or later"
    unfixed = _judge([_report(_vuln("CRITICAL", None))]).blocking[0]
    assert "no fix" in unfixed.reason and "exception" in unfixed.unblock and unfixed.fixed_version is None


def test_an_unexpired_exception_waives_and_names_itself() -> None:
    ex = _exception(date(2026, 6, 30))
    verdict = _judge([_report(_vuln("CRITICAL"))], (ex,))
    assert verdict.allowed and not verdict.expired
    assert [(w.finding.id, w.exception) for w in verdict.waived] == [("CVE-2099-0001", ex)]


def test_the_same_exception_stops_counting_after_its_expiry_day() -> None:
    ex = _exception(date(2026, 6, 30))
    reports = [_report(_vuln("CRITICAL"))]
    assert _judge(reports, (ex,), today=date(2026, 6, 30)).allowed  # the expiry day itself still counts
    later = _judge(reports, (ex,), today=date(2026, 7, 1))
    assert not later.allowed and not later.waived
    assert [b.id for b in later.blocking] == ["CVE-2099-0001"]
    assert [e.exception for e in later.expired] == [ex]
    assert "expired on 2026-06-30 and no longer counts" in later.expired[0].message
    assert later.to_json()["expired_exceptions"][0]["owner"] == "team@example.com"


def test_a_live_exception_wins_over_an_expired_one_for_the_same_finding() -> None:
    old, new = _exception(date(2026, 1, 1)), _exception(date(2026, 12, 31), image="*")
    verdict = _judge([_report(_vuln("CRITICAL"))], (old, new))
    assert verdict.allowed and verdict.waived[0].exception == new
    assert [e.exception for e in verdict.expired] == [old]


@pytest.mark.parametrize(("ex_image", "vid", "waived"), [
    ("spark", "CVE-2099-0001", True),
    ("*", "CVE-2099-0001", True),
    ("spark-py", "CVE-2099-0001", False),
    ("spark", "CVE-2099-0002", False),
])
def test_exceptions_match_by_id_and_image(ex_image: str, vid: str, waived: bool) -> None:
    verdict = _judge([_report(_vuln("CRITICAL"))], (_exception(date(2027, 1, 1), vid, ex_image),))
    assert verdict.allowed is waived


def test_exceptions_for_findings_that_would_not_block_are_not_listed() -> None:
    verdict = _judge([_report(_vuln("LOW"))], (_exception(date(2020, 1, 1)),))
    assert verdict.allowed and not verdict.waived and not verdict.expired


def test_secrets_always_block_even_with_a_matching_exception() -> None:
    secret = SecretFinding("aws-secret-access-key", "AWS Secret Access Key", Severity.CRITICAL, "/opt/creds", 2)
    lenient = Policy.model_validate({"vulnerabilities": {"max_severity_with_fix": "CRITICAL",
                                                         "max_severity_without_fix": "CRITICAL"}})
    verdict = judge([_report(secrets=(secret,))], lenient, (_exception(date(2027, 1, 1), "aws-secret-access-key"),),
                    environment="test", image="spark", today=TODAY)
    assert not verdict.allowed
    (blocked,) = verdict.blocking
    assert (blocked.kind, blocked.id, blocked.package) == ("secret", "aws-secret-access-key", "/opt/creds")
    assert "/opt/creds:2" in blocked.reason


def test_denied_licences_block_case_insensitively_and_others_pass() -> None:
    licences = (LicenseFinding("agpl-3.0", "mongo-tools", "forbidden"), LicenseFinding("MIT", "jq", "notice"))
    verdict = _judge([_report(licenses=licences)])
    assert [(b.kind, b.id, b.package) for b in verdict.blocking] == [("license", "agpl-3.0", "mongo-tools")]


def test_blocking_findings_are_ordered_secrets_licences_then_worst_vulnerabilities() -> None:
    secret = SecretFinding("github-pat", "GitHub PAT", Severity.CRITICAL, "/x", 1)
    report = _report(_vuln("HIGH", vid="CVE-2099-0005"), _vuln("CRITICAL", vid="CVE-2099-0009"), secrets=(secret,),
                     licenses=(LicenseFinding("AGPL-3.0", "p", "forbidden"),))
    kinds = [(b.kind, b.id) for b in _judge([report]).blocking]
    assert kinds == [("secret", "github-pat"), ("license", "AGPL-3.0"), ("vulnerability", "CVE-2099-0009"),
                     ("vulnerability", "CVE-2099-0005")]


def test_verdict_json_round_trips_the_essentials() -> None:
    doc = _judge([_report(_vuln("CRITICAL"))]).to_json()
    assert doc["allowed"] is False and doc["date"] == "2026-06-01" and doc["environment"] == "staging"
    assert doc["blocking"][0] | {"severity": "CRITICAL", "fixed_version": "2.0", "platform": "linux/amd64"} == \
        doc["blocking"][0]
