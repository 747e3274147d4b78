"""Predicate types, sorting stored attestations into verified and rejected, and summaries. Pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from moka_images import models
from moka_images.adapters import cosign
from moka_images.models import Digest, Environment
from moka_images.stages.verify import attestations as att

DATA = Path(__file__).parent / "data"
DIGEST = Digest("sha256:8718b0744ab742bd947ed59cdde763d99ace2387b9d0d4b152391d1cf11d3ce2")
OTHER = Digest("sha256:" + "1" * 64)


def _stored() -> list[cosign.Envelope]:
    return cosign.parse_envelopes((DATA / "download-attestation.jsonl").read_text())


def _verified() -> list[cosign.Envelope]:
    return cosign.parse_envelopes((DATA / "verify-attestation-sbom.jsonl").read_text())


def test_predicate_types() -> None:
    assert att.predicate_type("sbom") == "https://cyclonedx.org/bom"
    assert att.predicate_type(att.AttestationKind.SCAN) == "https://moka-images.dev/attestations/scan/v1"
    assert att.predicate_type("smoke") == "https://moka-images.dev/attestations/smoke/v1"
    assert att.predicate_type("promotion") == "https://moka-images.dev/attestations/promotion/v1"
    assert att.cosign_type("sbom") == "cyclonedx"
    assert att.cosign_type("promotion") == models.PROMOTION_TYPE
    assert att.kind_of("https://moka-images.dev/attestations/smoke/v1") is att.AttestationKind.SMOKE
    assert att.kind_of("https://slsa.dev/provenance/v1") is None
    with pytest.raises(ValueError):
        att.predicate_type("vuln")


def test_trust_runs_back_to_test() -> None:
    assert att.trusted_keys(Environment.TEST) == [Environment.TEST]
    assert att.trusted_keys(Environment.STAGING) == [Environment.STAGING, Environment.DEV, Environment.TEST]


def test_only_what_a_trusted_key_verified_is_valid() -> None:
    verified = {Environment.TEST: {models.SBOM_TYPE: _verified()}}
    audit = att.sort_envelopes(_stored(), DIGEST, None, verified, [Environment.TEST])
    assert [(a.kind, a.signer) for a in audit.valid] == [(att.AttestationKind.SBOM, Environment.TEST)]
    assert audit.valid[0].predicate["components"] == [{"name": "a"}, {"name": "b"}]
    assert sorted(r.predicate_type for r in audit.rejected) == sorted(
        [models.SBOM_TYPE, models.SBOM_TYPE, models.SCAN_TYPE, models.SMOKE_TYPE])
    assert all(r.reason == "no signature by the key of test" for r in audit.rejected)


def test_signer_is_the_first_trusted_key_that_verified() -> None:
    good = _verified()
    verified = {Environment.DEV: {}, Environment.TEST: {models.SBOM_TYPE: good}}
    audit = att.sort_envelopes(good, DIGEST, att.AttestationKind.SBOM, verified, [Environment.DEV, Environment.TEST])
    assert [a.signer for a in audit.valid] == [Environment.TEST]
    assert audit.rejected == ()


def test_kind_filter_leaves_other_kinds_out_entirely() -> None:
    audit = att.sort_envelopes(_stored(), DIGEST, att.AttestationKind.SCAN, {}, [Environment.TEST])
    assert audit.valid == ()
    assert [r.predicate_type for r in audit.rejected] == [models.SCAN_TYPE]


def test_an_attestation_about_another_digest_is_rejected() -> None:
    verified = {Environment.TEST: {models.SBOM_TYPE: _verified()}}
    audit = att.sort_envelopes(_verified(), OTHER, None, verified, [Environment.TEST])
    assert audit.valid == ()
    assert "not sha256:1111" in audit.rejected[0].reason


def test_summaries() -> None:
    sbom = {"bomFormat": "CycloneDX", "specVersion": "1.6", "metadata": {"component": {"name": "spark"}},
            "components": [{}, {}, {}]}
    assert att.summarize(att.AttestationKind.SBOM, sbom) == "CycloneDX 1.6 of spark: 3 components"
    scan = {"scanner": {"name": "trivy", "version": "0.76.0"}, "platforms": [{}, {}],
            "verdict": {"environment": "test", "allowed": False, "blocking": [{}], "waived": []}}
    assert att.summarize(att.AttestationKind.SCAN, scan) == "BLOCKED by test policy: 1 blocking, 0 waived (trivy 0.76.0, 2 platforms)"
    smoke = {"passed": True, "backend": "docker", "failures": [],
             "platforms": [{"platform": "linux/amd64", "passed": True}, {"platform": "linux/arm64", "passed": True}]}
    assert att.summarize(att.AttestationKind.SMOKE, smoke) == "passed on docker: linux/amd64 ok, linux/arm64 ok"
    promotion = {"from": "test", "to": "dev", "by": "ci", "gates": []}
    assert att.summarize(att.AttestationKind.PROMOTION, promotion) == "from=test, to=dev, by=ci"
    assert att.summarize(att.AttestationKind.SCAN, {"verdict": "odd"}) == "verdict=odd"
