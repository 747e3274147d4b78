"""`moka-images sign | attest | verify`: cosign signatures and attestations on an image's index digest.

Each environment signs with its own key (a file locally, a KMS key in production). Signing is idempotent:
a digest that already carries a valid signature by the environment's key is left alone. Only cosign's
`sha256-<hex>.sig` / `.att` tags are ever written, never an image tag. The cosign CLI signs; what it stored
is read through the registry client and verified in-process (`adapters.signatures`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moka_images import log
from moka_images.adapters import cosign, signatures
from moka_images.config.settings import Settings
from moka_images.errors import MokaError, ServiceError
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
    key, opts = settings.env(environment).signing_key, keys.options(settings, environment, signing=True)
    _BATCHES.run(f"{settings.profile} {environment} {key}", digest_ref, lambda refs: cosign.sign_all(refs, key, opts))
    check = verify_signature(settings, environment, digest_ref)
    if not check.ok:
        raise ServiceError(f"signed {digest_ref} but the signature does not verify with "
                           f"{settings.env(environment).public_key}: {check.problem}",
                           f"signing_key and public_key of {environment} in moka.yaml must be one key pair")
    log.info(f"signed {digest_ref} with {environment}'s key")
    return True


@dataclass
class _Request:
    ref: ImageRef
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class _Batches:
    """Signatures asked for at once with one key, made by one cosign process (group commit).

    The first request of a key signs at once; requests that arrive while it runs wait and are signed together by
    the next process, and so on. A key file is decrypted (scrypt) once per process, most of a signature's cost,
    so fifty promotions at once pay for a few decryptions instead of fifty. A batch that fails is signed again
    one by one, so one bad image fails alone.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, list[_Request]] = {}
        self._running: set[str] = set()

    def run(self, key: str, ref: ImageRef, sign_all: Callable[[list[ImageRef]], None]) -> None:
        """Sign `ref` (`sign_all` signs a list with the key named `key`), alone or with the requests that queue up
        meanwhile; raises what its signing raised."""
        request = _Request(ref)
        with self._lock:
            self._pending.setdefault(key, []).append(request)
            leads = key not in self._running
            self._running.add(key)
        if leads:
            self._drain(key, sign_all)
        request.done.wait()
        if request.error is not None:
            raise request.error

    def _drain(self, key: str, sign_all: Callable[[list[ImageRef]], None]) -> None:
        while True:
            with self._lock:
                batch = self._pending.pop(key, [])
                if not batch:
                    self._running.discard(key)
                    return
            try:
                _sign(batch, sign_all)
            except BaseException as exc:  # interrupted: no request may wait for ever
                with self._lock:
                    rest = self._pending.pop(key, [])
                    self._running.discard(key)
                for request in [*batch, *rest]:
                    request.error = request.error or exc
                    request.done.set()
                raise
            for request in batch:
                request.done.set()


def _sign(batch: list[_Request], sign_all: Callable[[list[ImageRef]], None]) -> None:
    """One process for the batch; if it fails, one each, so every request gets its own answer."""
    try:
        sign_all([r.ref for r in batch])
    except MokaError as exc:
        if len(batch) == 1:
            batch[0].error = exc
            return
        for request in batch:
            try:
                sign_all([request.ref])
            except MokaError as alone:
                request.error = alone


_BATCHES = _Batches()


def verify(settings: Settings, environment: Environment, digest_ref: ImageRef) -> Verification:
    """The signature by `environment`'s key and every attestation (trusting earlier environments' keys too)."""
    signature = verify_signature(settings, environment, digest_ref)
    return Verification(digest_ref, environment, signature, audit(settings, environment, digest_ref))


# ---- command line ------------------------------------------------------------------------------

