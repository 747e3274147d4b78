"""cosign signatures and attestations verified in-process with a public key: bytes in, verdicts out, no I/O.

A key pair made by cosign (or a KMS key of the same kind) signs with ECDSA P-256 over SHA-256: a signature
over the simple-signing payload stored in the `.sig` tag, an attestation over DSSE's pre-authentication
encoding (PAE) of the in-toto statement stored in the `.att` tag. The checks are the ones `cosign verify --key`
and `cosign verify-attestation --key --type` make without a transparency log, so the answers are the CLI's
(tests/integration/test_verify_parity.py holds the two side by side): a signature counts when it verifies
and its payload names the digest; an attestation when one of its signatures verifies over the PAE, its
payload is an in-toto statement, a subject is the digest and the predicate type is the one asked for.

The key and signature classes are securesystemslib's (its DSSE envelope gives the PAE); whether some bytes
verify with some key is a fact, so it is remembered by key, bytes digest and signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib import dsse
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Signature, SSlibKey

from moka_images.adapters.cosign import (
    IN_TOTO_PAYLOAD,
    Envelope,
    SignatureCheck,
    SignedPayload,
    StoredSignature,
)
from moka_images.errors import ServiceError
from moka_images.models import Digest

SCHEME = "ecdsa-sha2-nistp256"  # cosign's key pairs, and the KMS keys it signs with here (ECC_NIST_P256)
NO_SIGNATURES = "no signatures found"  # cosign's own words, which people and scripts already know
NO_MATCH = "no matching signatures"
# (key id, sha256 of the signed bytes, signature) -> verifies: one run looks at a bounded set of evidence
_facts: dict[tuple[str, str, str], bool] = {}


def load_key(pem: str) -> SSlibKey:
    """The public key in `pem`: ValueError if it is no PEM key, TypeError unless it is ECDSA P-256 (cosign's)."""
    key = load_pem_public_key(pem.encode())
    if not isinstance(key, EllipticCurvePublicKey) or not isinstance(key.curve, SECP256R1):
        raise TypeError(f"not an ECDSA P-256 public key ({type(key).__name__})")
    return SSlibKey.from_crypto(key, scheme=SCHEME)


def _decode(text: str, *, urlsafe: bool = False) -> bytes | None:
    """Base64 as cosign reads it (DSSE also allows the URL-safe alphabet); None if it is not."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        if not urlsafe:
            return None
    try:
        return base64.b64decode(text, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None


def verifies(key: SSlibKey, data: bytes, signature: bytes) -> bool:
    """Whether `signature` (ASN.1 DER ECDSA) over `data` verifies with `key`; remembered, as it cannot change."""
    fact = (key.keyid, hashlib.sha256(data).hexdigest(), signature.hex())
    if fact not in _facts:
        try:
            key.verify_signature(Signature(key.keyid, fact[2]), data)
            _facts[fact] = True
        except UnverifiedSignatureError:  # a bad signature, or bytes that are no signature at all
            _facts[fact] = False
    return _facts[fact]


def _simple_signing(payload: bytes) -> SignedPayload | None:
    """The simple-signing payload, or None if it is not one (then, to cosign, the claim does not hold)."""
    try:
        doc = json.loads(payload)
        critical = doc["critical"]
        optional = doc.get("optional") or {}
        if not isinstance(optional, dict):
            return None
        return SignedPayload(str((critical.get("identity") or {}).get("docker-reference", "")),
                             Digest(critical["image"]["docker-manifest-digest"]), optional)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def verify_signature(key: SSlibKey, stored: StoredSignature, digest: Digest) -> SignedPayload | None:
    """What `stored` vouches for, if its signature verifies with `key` and its payload names `digest`."""
    raw = _decode(stored.signature)
    if raw is None or not verifies(key, stored.payload, raw):
        return None
    payload = _simple_signing(stored.payload)
    return payload if payload is not None and payload.manifest_digest == digest else None


def check_signatures(key: SSlibKey, stored: Sequence[StoredSignature], digest: Digest) -> SignatureCheck:
    """The stored signatures of `digest` that verify with `key`, or why none does (as `cosign verify` says)."""
    if not stored:
        return SignatureCheck((), NO_SIGNATURES)
    verified = tuple(p for s in stored if (p := verify_signature(key, s, digest)) is not None)
    if verified:
        return SignatureCheck(verified)
    by_key = sum(1 for s in stored if (raw := _decode(s.signature)) is not None and verifies(key, s.payload, raw))
    reason = (f"{by_key} of {len(stored)} signature(s) verify with the key but are not for {digest.short}"
              if by_key else f"none of {len(stored)} signature(s) verifies with the key")
    return SignatureCheck((), f"{NO_MATCH}: {reason}")


def verify_envelope(key: SSlibKey, envelope: Envelope) -> bool:
    """Whether one of the envelope's signatures verifies with `key` over its PAE, as DSSE defines it."""
    if envelope.payload_type != IN_TOTO_PAYLOAD:  # cosign refuses any other payload before verifying
        return False
    pae = dsse.Envelope(envelope.payload, envelope.payload_type, {}).pae()
    return any(raw is not None and verifies(key, pae, raw)
               for raw in (_decode(sig, urlsafe=True) for sig in envelope.signatures))


def verified_attestations(key: SSlibKey, envelopes: Sequence[Envelope], digest: Digest,
                          predicate_type: str) -> list[Envelope]:
    """The envelopes that `cosign verify-attestation --key --type predicate_type` accepts for `digest`."""
    out = []
    for envelope in envelopes:
        if not verify_envelope(key, envelope):
            continue
        try:
            statement = envelope.statement()
        except ServiceError:
            continue
        if statement.covers(digest) and statement.predicate_type == predicate_type:
            out.append(envelope)
    return out
