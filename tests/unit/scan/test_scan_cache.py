"""The scan cache (same digest + same DB = no work) and the scan attestation predicate."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from moka_images.adapters import trivy
from moka_images.adapters.registry import INDEX_TYPES, Manifest, digest_of
from moka_images.config.policies import Policy
from moka_images.config.settings import Settings, load_settings
from moka_images.findings import DbVersion, ScanReport, Severity, VulnFinding
from moka_images.models import Digest, ImageRef, Platform
from moka_images.plan.verdict import judge
from moka_images.stages.verify import scan

ROOT = Path(__file__).resolve().parents[3]
AMD64 = Platform("linux", "amd64")
DB1 = DbVersion("sha256:" + "1" * 64, "2026-01-01T00:00:00Z", "sha256:" + "2" * 64, "2026-01-01T00:00:00Z")
DB2 = DbVersion("sha256:" + "3" * 64, "2026-02-01T00:00:00Z", "sha256:" + "2" * 64, "2026-01-01T00:00:00Z")
REF = ImageRef("127.0.0.1:15001", "moka/spark", digest=Digest("sha256:" + "c" * 64))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(root=ROOT, profile="local").model_copy(update={"home": tmp_path})


@pytest.fixture
def trivy_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[ImageRef, DbVersion]]:
    """Stand-in for the trivy process: records the call and writes what trivy.scan would."""
    calls: list[tuple[ImageRef, DbVersion]] = []

    def fake_scan(env: trivy.TrivyEnv, image: ImageRef, platform: Platform, db: DbVersion, out: Path) -> ScanReport:
        calls.append((image, db))
        out.mkdir(parents=True, exist_ok=True)
        (out / "sbom.cdx.json").write_text('{"bomFormat": "CycloneDX"}')
        assert image.digest is not None
        return ScanReport(platform, image.digest, db, (VulnFinding("CVE-2099-0001", "jq", "1", "2", Severity.HIGH),))

    monkeypatch.setattr(trivy, "scan", fake_scan)
    return calls


def test_same_digest_and_db_does_no_work(settings: Settings, trivy_calls: list) -> None:
    first, sbom, hit = scan.scan_platform(settings, REF, AMD64, DB1)
    assert not hit and len(trivy_calls) == 1
    again, sbom_again, hit_again = scan.scan_platform(settings, REF, AMD64, DB1)
    assert hit_again and len(trivy_calls) == 1
    assert again == first and sbom_again == sbom and sbom.exists()
    assert sbom.is_relative_to(settings.home / "cache" / "scans")


def test_a_new_db_or_another_digest_scans_again(settings: Settings, trivy_calls: list) -> None:
    scan.scan_platform(settings, REF, AMD64, DB1)
    _, _, hit = scan.scan_platform(settings, REF, AMD64, DB2)
    assert not hit
    other = REF.with_digest(Digest("sha256:" + "d" * 64))
    _, _, hit = scan.scan_platform(settings, other, AMD64, DB1)
    assert not hit and len(trivy_calls) == 3


def test_the_cache_follows_the_digest_not_the_registry(settings: Settings, trivy_calls: list) -> None:
    scan.scan_platform(settings, REF, AMD64, DB1)
    promoted = ImageRef("127.0.0.1:15002", "moka/spark", digest=REF.digest)
    _, _, hit = scan.scan_platform(settings, promoted, AMD64, DB1)
    assert hit and len(trivy_calls) == 1


def test_scan_predicate_carries_digests_db_counts_and_verdict(settings: Settings, trivy_calls: list) -> None:
    report, sbom, _ = scan.scan_platform(settings, REF.with_digest(Digest("sha256:" + "e" * 64)), AMD64, DB1)
    image_scan = scan.ImageScan(REF, "spark", (report,), ((AMD64, sbom),))
    policy = Policy.model_validate({"vulnerabilities": {"max_severity_with_fix": "MEDIUM",
                                                        "max_severity_without_fix": "HIGH"}})
    verdict = judge(image_scan.reports, policy, (), environment="dev", image="spark", today=date(2026, 3, 1))
    predicate = json.loads(json.dumps(scan.scan_predicate(image_scan, verdict)))
    assert predicate["image"] == str(REF)
    assert predicate["db"]["vulnerability"] == {"digest": DB1.vuln_digest, "updated_at": DB1.vuln_updated_at}
    (plat,) = predicate["platforms"]
    assert plat["platform"] == "linux/amd64" and plat["digest"] == "sha256:" + "e" * 64
    assert plat["counts"]["HIGH"] == 1
    assert predicate["verdict"]["allowed"] is False
    assert predicate["verdict"]["blocking"][0]["id"] == "CVE-2099-0001"
    assert image_scan.sbom(AMD64) == sbom


class _FakeRegistry:
    """Just enough of RegistryClient for tag resolution and platform listing."""

    def __init__(self, tags: dict[str, Digest], manifests: dict[str, Manifest]) -> None:
        self.tags, self.manifests = tags, manifests

    def list_tags(self, repository: str) -> list[str]:
        return list(self.tags)

    def head_manifest(self, repository: str, reference: str) -> Digest | None:
        return self.tags.get(reference)

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        return self.manifests[reference]


def _index(platform_digests: dict[str, Digest]) -> Manifest:
    doc = {"schemaVersion": 2, "mediaType": INDEX_TYPES[0], "manifests": [
        {"digest": str(d), "platform": {"os": "linux", "architecture": arch}} for arch, d in platform_digests.items()
    ] + [{"digest": "sha256:" + "9" * 64, "platform": {"os": "unknown", "architecture": "unknown"}}]}
    raw = json.dumps(doc).encode()
    return Manifest(raw, INDEX_TYPES[0], digest_of(raw))


def test_scan_image_scans_each_platform_of_the_index_once(settings: Settings, trivy_calls: list,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    per_arch = {"amd64": Digest("sha256:" + "4" * 64), "arm64": Digest("sha256:" + "5" * 64)}
    index = _index(per_arch)
    client = _FakeRegistry({}, {str(index.digest): index})
    monkeypatch.setattr(scan, "ensure_databases", lambda settings, mirror: DB1)
    ref = REF.with_digest(index.digest)
    first = scan.scan_image(settings, client, ref, "spark", mirror=client)  # type: ignore[arg-type]
    assert [(str(r.platform), r.digest) for r in first.reports] == [
        ("linux/amd64", per_arch["amd64"]), ("linux/arm64", per_arch["arm64"])]
    assert [image.digest for image, _ in trivy_calls] == list(per_arch.values())
    second = scan.scan_image(settings, client, ref, "spark", mirror=client)  # type: ignore[arg-type]
    assert set(second.from_cache) == {r.platform for r in first.reports} and len(trivy_calls) == 2
