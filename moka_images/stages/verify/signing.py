"""`moka-images sign | attest | verify`: cosign signatures and attestations on an image's index digest.

Each environment signs with its own key (a file locally, a KMS key in production). Signing is idempotent:
a digest that already carries a valid signature by the environment's key is left alone. Only cosign's
`sha256-<hex>.sig` / `.att` tags are ever written, never an image tag. The cosign CLI signs; what it stored
is read through the registry client and verified in-process (`adapters.signatures`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moka_images import log
from moka_images.adapters import cosign, signatures
from moka_images.config.settings import Settings
from moka_images.errors import ServiceError
from moka_images.models import Digest, Environment, ImageRef
from moka_images.stages import keys, registries
from moka_images.stages.verify.attestations import Audit, audit


@dataclass(frozen=True)
class Verification:
    """What `verify` found on a digest: its signatures by the environment's key and every attestation."""

    image: ImageRef
    environment: Environment
    signature: cosign.SignatureCheck
    attestations: Audit

    @property
    def ok(self) -> bool:
        """Signed by the environment's key, and no attestation that fails to verify."""
        return self.signature.ok and not self.attestations.rejected

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form for `verify --json`."""
        return {
            "image": str(self.image), "environment": self.environment.value, "ok": self.ok,
            "signature": {"verified": self.signature.ok, "problem": self.signature.problem,
                          "count": len(self.signature.verified)},
            "attestations": [a.to_json() for a in self.attestations.valid],
            "rejected": [r.to_json() for r in self.attestations.rejected],
        }


def _pinned(ref: ImageRef) -> Digest:
    if ref.digest is None:
        raise ValueError(f"{ref} is not pinned to a digest; resolve it first")
    return ref.digest


def verify_signature(settings: Settings, environment: Environment, digest_ref: ImageRef) -> cosign.SignatureCheck:
    """Signatures on `digest_ref` (in `environment`'s registry) that verify with `environment`'s public key."""
    digest = _pinned(digest_ref)
    stored = cosign.stored_signatures(registries.client(settings, environment), digest_ref)
    return signatures.check_signatures(keys.verifier(settings, environment), stored, digest)


def sign(settings: Settings, environment: Environment, digest_ref: ImageRef) -> bool:
    """Sign `digest_ref` with `environment`'s key unless a valid signature by it is there; True if signed now."""
    if verify_signature(settings, environment, digest_ref).ok:
        log.info(f"{digest_ref} is already signed with {environment}'s key")
        return False
    registries.login_tools(settings, environment)
    cosign.sign(digest_ref, settings.env(environment).signing_key, keys.options(settings, environment, signing=True))
    check = verify_signature(settings, environment, digest_ref)
    if not check.ok:
        raise ServiceError(f"signed {digest_ref} but the signature does not verify with "
                           f"{settings.env(environment).public_key}: {check.problem}",
                           f"signing_key and public_key of {environment} in moka.yaml must be one key pair")
    log.info(f"signed {digest_ref} with {environment}'s key")
    return True


def verify(settings: Settings, environment: Environment, digest_ref: ImageRef) -> Verification:
    """The signature by `environment`'s key and every attestation (trusting earlier environments' keys too)."""
    signature = verify_signature(settings, environment, digest_ref)
    return Verification(digest_ref, environment, signature, audit(settings, environment, digest_ref))


# ---- command line ------------------------------------------------------------------------------

