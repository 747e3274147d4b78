"""The gates that need the world: the signature, the scan verdict against the target policy, the smoke result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from moka_images.adapters.registry import Registry
from moka_images.config.settings import Settings
from moka_images.findings import ScanReport
from moka_images.models import Environment
from moka_images.plan.promotion import GateResult, smoke_covers
from moka_images.stages import keys, registries
from moka_images.stages.promote.inventory import Source, attestation_digests, predicate_key
from moka_images.stages.verify import attestations, scan, signing
from moka_images.stages.verify.attestations import Attestation, AttestationKind


def signature_gate(settings: Settings, source: Source) -> GateResult:
    """A signature on the digest verifies with the source environment's key."""
    check = signing.verify_signature(settings, source.env, source.ref)
    key = keys.describe(settings, source.env)
    if check.ok:
        return GateResult("signature", True, f"{len(check.verified)} signature(s) verify with {key}",
                          {"key": key, "signatures": len(check.verified)})
    return GateResult("signature", False, f"no signature on {source.candidate.digest.short} verifies with {key}: "
                                          f"{check.problem}", {"key": key})


def scan_gate(settings: Settings, source: Source, target: Environment, client: Registry,
              evidence: Mapping[str, str], found: Sequence[Attestation], today: date) -> GateResult:
    """The scan passes the target environment's policy.

    The attested scan's reports are judged when the predicate carries them; otherwise the image is scanned
    (trivy per platform, cached by platform digest and DB, so usually no work) and judged.
    """
    attested = [a for a in found if a.kind is AttestationKind.SCAN]
    latest = attested[-1] if attested else None
    facts: dict[str, Any] = {"policy": str(settings.policy_path(target).relative_to(settings.root))
                             if settings.policy_path(target).is_relative_to(settings.root)
                             else str(settings.policy_path(target))}
    if latest is not None:
        facts["attestation"] = evidence.get(predicate_key(latest.predicate_type, latest.predicate))
        facts["attested_by"] = latest.signer.value
    reports = [ScanReport.from_json(r) for r in latest.predicate.get("reports") or []] if latest else []
    if not reports:
        registries.login_tools(settings, source.env)  # trivy reads the registry login from the docker config
        result = scan.scan_image(settings, client, source.ref, source.name)
        facts["scanned"] = "cache" if len(result.from_cache) == len(result.reports) else "trivy"
    else:
        result = scan.ImageScan(source.ref, source.name, tuple(reports), ())
    scanned = sorted(str(r.platform) for r in result.reports)
    if scanned != sorted(source.platforms):
        return GateResult("scan", False, f"scanned {', '.join(scanned) or 'nothing'}, but the index has "
                                         f"{', '.join(source.platforms)}", facts)
    verdict = scan.judge_scan(settings, result, target, today)
    facts["db"] = result.reports[0].db.key if result.reports else None
    facts["blocking"] = sorted({f"{f.id} {f.package}" for f in verdict.blocking})
    if verdict.allowed:
        return GateResult("scan", True, f"allowed by {target} policy ({len(verdict.waived)} waived)", facts)
    shown = sorted({f"{f.id} in {f.package} ({f.severity.name}): {f.unblock}" for f in verdict.blocking})
    more = f" and {len(shown) - 4} more" if len(shown) > 4 else ""
    return GateResult("scan", False, f"blocked by {target} policy: {'; '.join(shown[:4])}{more}", facts)


def smoke_gate(source: Source, evidence: Mapping[str, str], found: Sequence[Attestation]) -> GateResult:
    """Smoke passed on every platform of the index: the newest attested result.

    Never runs the suite: a gate only reads evidence (the pipeline and `moka-images smoke` run suites), so
    neither a dry run nor an untrusted image ever executes anything.
    """
    digest = source.candidate.digest
    attested = [a for a in found if a.kind is AttestationKind.SMOKE
                and (a.predicate.get("image") or {}).get("digest") == str(digest)]
    if not attested:
        return GateResult("smoke", False, f"no smoke result attested for {digest.short}; run `moka-images smoke "
                                          f"{source.name}@{digest} --env {source.env} --attest`", {"attestation": None})
    latest = attested[-1]
    ok, detail = smoke_covers(latest.predicate, digest, source.platforms)
    facts = {"attestation": evidence.get(predicate_key(latest.predicate_type, latest.predicate)),
             "attested_by": latest.signer.value}
    return GateResult("smoke", ok, detail, facts)


def world_gates(settings: Settings, source: Source, target: Environment, client: Registry) -> tuple[GateResult, ...]:
    """The signature, then (only when it verifies) the scan verdict and the smoke result.

    Nothing attested on an image whose signature does not verify is trusted or read, and its content is
    never scanned: the refusal names the signature alone.
    """
    signature = signature_gate(settings, source)
    if not signature.passed:
        return (signature,)
    # What both gates judge, read and verified once (the SBOMs, megabytes each, are not even fetched).
    judged = (AttestationKind.SCAN, AttestationKind.SMOKE)
    found = attestations.read_attestations(settings, source.env, source.ref, judged)
    evidence = attestation_digests(client, source.repository, source.candidate.digest,
                                   {attestations.predicate_type(k) for k in judged})
    scanned = scan_gate(settings, source, target, client, evidence, found, datetime.now(UTC).date())
    return signature, scanned, smoke_gate(source, evidence, found)
