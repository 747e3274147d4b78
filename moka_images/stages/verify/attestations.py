"""Attestations on an index digest: SBOMs, scan verdicts, smoke results and promotion records, as cosign
in-toto attestations signed with an environment's key and read back only once verified.

Promotion copies attestations along with the image, so an attestation in prod may carry the signature of an
earlier environment's key (the SBOM and scan made in test). Reading trusts the environment's own key and the
keys of the environments before it, and says which one vouched for each attestation; anything else is
rejected and reported, never returned as valid.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from moka_images import log
from moka_images.adapters import cosign, signatures
from moka_images.config.settings import Settings
from moka_images.errors import ServiceError
from moka_images.models import PROMOTION_TYPE, SBOM_TYPE, SCAN_TYPE, SMOKE_TYPE, Digest, Environment, ImageRef
from moka_images.stages import keys, registries


class AttestationKind(StrEnum):
    """What an attestation is about."""

    SBOM = "sbom"
    SCAN = "scan"
    SMOKE = "smoke"
    PROMOTION = "promotion"


PREDICATE_TYPES: Mapping[AttestationKind, str] = {
    AttestationKind.SBOM: SBOM_TYPE, AttestationKind.SCAN: SCAN_TYPE, AttestationKind.SMOKE: SMOKE_TYPE, AttestationKind.PROMOTION: PROMOTION_TYPE,
}
# What an audit reads: one kind, several, or (None) every attestation.
Kinds = AttestationKind | str | Collection[AttestationKind] | None
# cosign's own name for a type it knows; it writes the same predicateType URI.
_COSIGN_TYPES: Mapping[AttestationKind, str] = {AttestationKind.SBOM: "cyclonedx"}


def predicate_type(kind: AttestationKind | str) -> str:
    """The in-toto predicateType URI of a kind."""
    return PREDICATE_TYPES[AttestationKind(kind)]


def cosign_type(kind: AttestationKind | str) -> str:
    """What `cosign attest --type` is given for a kind."""
    return _COSIGN_TYPES.get(AttestationKind(kind), predicate_type(kind))


def kind_of(type_uri: str) -> AttestationKind | None:
    """The kind of a predicateType URI, None for types moka-images does not make."""
    return next((k for k, uri in PREDICATE_TYPES.items() if uri == type_uri), None)


@dataclass(frozen=True)
class Attestation:
    """A verified attestation: its predicate, the digest it is about and whose key signed it."""

    kind: AttestationKind | None
    predicate_type: str
    predicate: Mapping[str, Any]
    subject: Digest
    signer: Environment

    def summary(self) -> str:
        """One line about the predicate, for people."""
        return summarize(self.kind, self.predicate)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form, predicate included."""
        return {"kind": self.kind.value if self.kind else None, "predicate_type": self.predicate_type,
                "subject": str(self.subject), "signer": self.signer.value, "summary": self.summary(),
                "predicate": dict(self.predicate)}


@dataclass(frozen=True)
class Rejected:
    """An attestation found on the digest that no trusted key vouches for, and why."""

    predicate_type: str
    reason: str

    def to_json(self) -> dict[str, str]:
        """JSON-safe form."""
        return {"predicate_type": self.predicate_type, "reason": self.reason}


@dataclass(frozen=True)
class Audit:
    """Every attestation on a digest, sorted into verified ones (oldest first) and rejected ones."""

    valid: tuple[Attestation, ...]
    rejected: tuple[Rejected, ...]


def trusted_keys(environment: Environment) -> list[Environment]:
    """Whose keys vouch for attestations in `environment`: its own, then each earlier one's."""
    chain: list[Environment] = []
    current: Environment | None = environment
    while current is not None:
        chain.append(current)
        current = current.previous
    return chain


def sort_envelopes(envelopes: Sequence[cosign.Envelope], digest: Digest, kind: Kinds,
                   verified: Mapping[Environment, Mapping[str, Sequence[cosign.Envelope]]],
                   trusted: Sequence[Environment]) -> Audit:
    """Pure: match what is stored against what each trusted key verified (per predicate type).

    An envelope counts as valid when it is in a verified set, its statement is about `digest`, and (when
    asked) of `kind` (one kind or several); the first trusted key that verified it is its signer.
    """
    wanted = _kinds(kind)
    valid, rejected = [], []
    for envelope in envelopes:
        try:
            statement = envelope.statement()
        except ServiceError as exc:
            rejected.append(Rejected("?", exc.message))
            continue
        found_kind = kind_of(statement.predicate_type)
        if wanted is not None and found_kind not in wanted:
            continue
        signer = next((e for e in trusted
                       if envelope in verified.get(e, {}).get(statement.predicate_type, ())), None)
        if signer is None:
            names = ", ".join(e.value for e in trusted)
            rejected.append(Rejected(statement.predicate_type, f"no signature by the key of {names}"))
        elif not statement.covers(digest):
            got = ", ".join(str(s.digest) for s in statement.subjects)
            rejected.append(Rejected(statement.predicate_type, f"it is about {got}, not {digest}"))
        else:
            valid.append(Attestation(found_kind, statement.predicate_type, statement.predicate, digest, signer))
    return Audit(tuple(valid), tuple(rejected))


def _kinds(kind: Kinds) -> frozenset[AttestationKind] | None:
    if kind is None:
        return None
    return frozenset({AttestationKind(kind)} if isinstance(kind, str) else {AttestationKind(k) for k in kind})


def _pinned(ref: ImageRef) -> Digest:
    if ref.digest is None:
        raise ValueError(f"{ref} is not pinned to a digest")
    return ref.digest


def audit(settings: Settings, environment: Environment, digest_ref: ImageRef, kind: Kinds = None,
          *, trusted: Sequence[Environment] | None = None) -> Audit:
    """Every attestation (of `kind`: one kind or several) on `digest_ref` in `environment`'s registry, verified
    in-process.

    Each trusted key checks, per predicate type, only the attestations no earlier key has vouched for, as
    `cosign verify-attestation --key --type` would.
    """
    digest = _pinned(digest_ref)
    wanted = _kinds(kind)
    chain = list(trusted) if trusted is not None else trusted_keys(environment)
    stored = cosign.stored_attestations(registries.client(settings, environment), digest_ref,
                                        None if wanted is None else {predicate_type(k) for k in wanted})
    pending: dict[str, list[cosign.Envelope]] = {}
    for envelope in stored:
        try:
            type_uri = envelope.statement().predicate_type
        except ServiceError:
            continue  # sort_envelopes reports it
        if wanted is None or kind_of(type_uri) in wanted:
            pending.setdefault(type_uri, []).append(envelope)
    verified: dict[Environment, dict[str, list[cosign.Envelope]]] = {}
    for key_env in chain:
        if not any(pending.values()):
            break  # every attestation has its signer: the other keys need not even be read
        key = keys.verifier(settings, key_env)
        for type_uri, left in pending.items():
            good = signatures.verified_attestations(key, left, digest, type_uri)
            verified.setdefault(key_env, {})[type_uri] = good
            pending[type_uri] = [e for e in left if e not in good]
    return sort_envelopes(stored, digest, wanted, verified, chain)


def read_attestations(settings: Settings, environment: Environment, digest_ref: ImageRef,
                      kind: Kinds = None, *, trusted: Sequence[Environment] | None = None) -> list[Attestation]:
    """Verified attestations (of `kind`) on `digest_ref`, oldest first; rejected ones are logged, not returned.

    `trusted` narrows whose keys count (default: `environment`'s and every earlier environment's).
    """
    found = audit(settings, environment, digest_ref, kind, trusted=trusted)
    for bad in found.rejected:
        log.warn(f"ignoring an attestation on {digest_ref}: {bad.predicate_type}: {bad.reason}")
    return list(found.valid)


def attest(settings: Settings, environment: Environment, digest_ref: ImageRef, kind: AttestationKind | str,
           predicate: Mapping[str, Any], *, replace: bool = False) -> bool:
    """Attest `predicate` about `digest_ref` with `environment`'s key; False if that exact one is there.

    `replace` drops the earlier attestations of this kind (for results that supersede, not add up).
    """
    kind = AttestationKind(kind)
    # Only this key's own attestations can make this one a repeat: others (earlier environments' promotion
    # records, signed with their own keys) are simply not ours, not suspicious, so nothing is warned about.
    mine = audit(settings, environment, digest_ref, kind, trusted=[environment]).valid
    if any(a.predicate == predicate for a in mine):
        log.info(f"{kind} attestation already on {digest_ref}, signed by {environment}'s key")
        return False
    registries.login_tools(settings, environment)
    with tempfile.TemporaryDirectory(prefix="moka-attest-") as tmp:
        path = Path(tmp) / "predicate.json"
        path.write_text(json.dumps(predicate, sort_keys=True))
        cosign.attest(digest_ref, settings.env(environment).signing_key, cosign_type(kind), path,
                      keys.options(settings, environment, signing=True), replace=replace)
    log.info(f"attested {kind} on {digest_ref} with {environment}'s key")
    return True


# ---- summaries (pure) -------------------------------------------------------------------------


def summarize(kind: AttestationKind | None, predicate: Mapping[str, Any]) -> str:
    """One line about a predicate; tolerant of shapes it does not know."""
    try:
        if kind is AttestationKind.SBOM:
            return _sbom(predicate)
        if kind is AttestationKind.SCAN:
            return _scan(predicate)
        if kind is AttestationKind.SMOKE:
            return _smoke(predicate)
    except (AttributeError, TypeError, KeyError):
        pass
    return _generic(predicate)


def _sbom(p: Mapping[str, Any]) -> str:
    component = (p.get("metadata") or {}).get("component") or {}
    what = f" of {component['name']}" if component.get("name") else ""
    return (f"{p.get('bomFormat', 'SBOM')} {p.get('specVersion', '?')}{what}: "
            f"{len(p.get('components') or [])} components")


def _scan(p: Mapping[str, Any]) -> str:
    verdict = p["verdict"]
    outcome = "allowed" if verdict["allowed"] else "BLOCKED"
    scanner = p.get("scanner") or {}
    return (f"{outcome} by {verdict.get('environment', '?')} policy: {len(verdict.get('blocking') or [])} blocking,"
            f" {len(verdict.get('waived') or [])} waived ({scanner.get('name', '?')} {scanner.get('version', '')},"
            f" {len(p.get('platforms') or [])} platforms)")


def _smoke(p: Mapping[str, Any]) -> str:
    platforms = ", ".join(f"{x['platform']} {'ok' if x['passed'] else 'FAILED'}" for x in p.get("platforms") or [])
    outcome = "passed" if p["passed"] else f"FAILED ({len(p.get('failures') or [])} failures)"
    return f"{outcome} on {p.get('backend', '?')}: {platforms}"


def _generic(p: Mapping[str, Any]) -> str:
    scalars = [f"{k}={v}" for k, v in p.items() if isinstance(v, str | int | float | bool)][:5]
    return ", ".join(scalars) or f"{len(p)} fields"
