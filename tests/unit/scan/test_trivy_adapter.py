"""The trivy adapter's pure parts: the flags every call gets, and parsing a real trivy 0.76 JSON report."""

from __future__ import annotations

import json
from pathlib import Path

from moka_images.adapters.trivy import TrivyEnv, parse_report
from moka_images.findings import DbVersion, ScanReport, Severity
from moka_images.models import Digest, Platform

DATA = Path(__file__).parent / "data"
DB = DbVersion("sha256:" + "1" * 64, "2026-01-01T00:00:00Z", "sha256:" + "2" * 64, "2026-01-01T00:00:00Z")
DIGEST = Digest("sha256:" + "a" * 64)


def test_every_call_is_kept_off_the_internet(tmp_path: Path) -> None:
    args = TrivyEnv(tmp_path, "127.0.0.1:15000", "trivy-db", "trivy-java-db").common_args()
    assert {"--skip-version-check", "--disable-telemetry", "--insecure"} <= set(args)
    assert args[args.index("--db-repository") + 1] == "127.0.0.1:15000/trivy-db:2"
    assert args[args.index("--java-db-repository") + 1] == "127.0.0.1:15000/trivy-java-db:1"
    assert args[args.index("--cache-dir") + 1] == str(tmp_path)


def test_insecure_only_for_loopback_registries(tmp_path: Path) -> None:
    env = TrivyEnv(tmp_path, "111100001111.dkr.ecr.eu-west-1.amazonaws.com", "upstream/trivy-db", "upstream/j")
    assert "--insecure" not in env.common_args("222200002222.dkr.ecr.eu-west-1.amazonaws.com")
    assert "--insecure" in env.common_args("127.0.0.1:15001")


def test_parse_a_real_report() -> None:
    doc = json.loads((DATA / "trivy-report.json").read_text())
    report = parse_report(doc, Platform("linux", "amd64"), DIGEST, DB)
    assert report.os == "debian 12.10" and report.trivy_version == "0.76.0"
    assert [(v.id, v.package, v.severity, v.fixed_version) for v in report.vulnerabilities] == [
        ("CVE-2099-0001", "jq", Severity.CRITICAL, "1.7.1-99"),
        ("CVE-2099-0002", "jq", Severity.HIGH, None),
        ("CVE-2099-0100", "com.example.moka:moka-test-lib", Severity.HIGH, "2.0.0"),
        ("CVE-2099-0003", "libonig5", Severity.MEDIUM, "6.9.9-99"),
        ("CVE-2099-0004", "jq", Severity.LOW, "1.7.1-99"),
    ]
    jar = next(v for v in report.vulnerabilities if v.id == "CVE-2099-0100")
    assert jar.package_path == "opt/app/moka-test-lib-1.2.0.jar"
    assert [(s.rule_id, s.path, s.line) for s in report.secrets] == [
        ("aws-access-key-id", "/opt/app/conf/credentials", 1), ("aws-secret-access-key", "/opt/app/conf/credentials", 2)]
    assert [(lic.name, lic.package) for lic in report.licenses] == [("MIT", "jq")]
    assert report.package_count == 3
    assert report.counts() == {"CRITICAL": 1, "HIGH": 2, "MEDIUM": 1, "LOW": 1, "UNKNOWN": 0, "SECRETS": 2}


def test_reports_round_trip_through_the_cache_format() -> None:
    doc = json.loads((DATA / "trivy-report.json").read_text())
    report = parse_report(doc, Platform("linux", "arm64"), DIGEST, DB)
    assert ScanReport.from_json(json.loads(json.dumps(report.to_json()))) == report


def test_an_empty_report_has_no_findings() -> None:
    report = parse_report({"Results": None}, Platform("linux", "amd64"), DIGEST, DB)
    assert report.vulnerabilities == () and report.secrets == () and report.os == ""
