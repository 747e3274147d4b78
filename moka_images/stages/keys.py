"""Per-environment cosign keys: local key files made at `dev up`, or KMS keys passed to cosign as they are.

A local private key is encrypted with a password kept beside it (`<key>.password`, mode 0600) unless
`MOKA_COSIGN_PASSWORD_<ENV>` (or cosign's own COSIGN_PASSWORD) provides one, as a CI secret would.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import secrets
from pathlib import Path

from securesystemslib.signer import SSlibKey

from moka_images import log
from moka_images.adapters import cosign, ecr, signatures
from moka_images.adapters.registry import is_local
from moka_images.config.settings import Settings
from moka_images.errors import ConfigError, ServiceError
from moka_images.models import Environment
from moka_images.stages import repositories

_role_env: dict[tuple[str, str], dict[str, str]] = {}
_verifiers: dict[tuple[str, ...], SSlibKey] = {}


def password_file(key: str) -> Path:
    """Where the password of a local private key lives."""
    return Path(key).with_suffix(".password")


def password_variable(environment: Environment) -> str:
    """The environment variable that may carry `environment`'s key password."""
    return f"MOKA_COSIGN_PASSWORD_{environment.value.upper()}"


def ensure_keys(settings: Settings) -> list[Environment]:
    """Create the missing local key pairs of every environment (KMS keys are left alone); returns those made.

    A public key without its private key is left as it is: that is a verify-only setup, not a missing key.
    """
    made = []
    lock = settings.home / "locks" / "keys.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # two first runs at once must not pair one's key with the other's password
        for environment in Environment:
            if _ensure_pair(settings, environment):
                made.append(environment)
    return made


def _ensure_pair(settings: Settings, environment: Environment) -> bool:
    cfg = settings.env(environment)
    if cosign.is_kms(cfg.signing_key) or cosign.is_kms(cfg.public_key):
        return False
    private, public = Path(cfg.signing_key), Path(cfg.public_key)
    if private.exists() or public.exists():
        if private.exists() and not public.exists():
            public.write_text(cosign.public_key(str(private), options(settings, environment, signing=True)))
            log.info(f"{environment}: wrote the missing public key {public}")
        return False
    password = secrets.token_urlsafe(24)
    private.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_private(password_file(cfg.signing_key), password)  # first: a key must never lack its password
    cosign.generate_key_pair(private, public, password)
    log.info(f"{environment}: new signing key {private}")
    return True


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def password(environment: Environment, key: str) -> str:
    """The password of a local private key: the per-environment variable, the file beside it, COSIGN_PASSWORD."""
    if os.environ.get(password_variable(environment)) is not None:
        return os.environ[password_variable(environment)]
    path = password_file(key)
    if path.is_file():
        return path.read_text().strip()
    if os.environ.get("COSIGN_PASSWORD") is not None:
        return os.environ["COSIGN_PASSWORD"]
    raise ConfigError(f"no password for {environment}'s signing key {key}",
                      f"set {password_variable(environment)} or write it to {path}")


def options(settings: Settings, key_env: Environment, *, registry_env: Environment | None = None,
            signing: bool = False) -> cosign.Options:
    """cosign options to use `key_env`'s key against `registry_env`'s registry (default: the same one)."""
    registry = settings.env(registry_env or key_env).registry
    cfg = settings.env(key_env)
    key = cfg.signing_key if signing else cfg.public_key
    if cosign.is_kms(key):
        env = kms_env(settings, key_env) if key.startswith("awskms://") else {}
    else:
        env = {"COSIGN_PASSWORD": password(key_env, key)} if signing else {}
    return cosign.Options(plain_http=is_local(registry), env=env)


def kms_env(settings: Settings, environment: Environment) -> dict[str, str]:
    """What cosign's awskms provider needs: the region, the endpoint when not real AWS, the account's role.

    The key references stay as in production (`awskms:///alias/moka-test`): an alias resolves in the caller's
    account, so cosign acts through `environment`'s role. A non-AWS endpoint (moto) goes in the SDK's
    AWS_ENDPOINT_URL_KMS, because the `awskms://HOST:PORT/...` form always speaks HTTPS.
    """
    env = {"AWS_REGION": settings.ecr.region}
    if settings.ecr.endpoint:
        env["AWS_ENDPOINT_URL_KMS"] = settings.ecr.endpoint
    role = settings.env(environment).role_arn
    if role:
        key = (settings.profile, role)
        if key not in _role_env:
            try:
                _role_env[key] = ecr.assume_role(repositories.aws_access(settings), role, "moka-images-sign")
            except ServiceError as exc:
                raise ServiceError(f"cannot use {environment}'s KMS key: {exc.message}", exc.hint) from exc
        env.update(_role_env[key])
    return env


def verifier(settings: Settings, environment: Environment) -> SSlibKey:
    """`environment`'s public key, to verify with in-process: read once per run per file or KMS key.

    A KMS alias resolves in the caller's account, so one reference names a different key in each environment's
    account: a KMS key is remembered per environment, a file per path.
    """
    ref = settings.env(environment).public_key
    kms = cosign.is_kms(ref)
    cache = (settings.profile, environment.value, ref) if kms else (str(Path(ref).resolve()),)
    if cache not in _verifiers:
        if kms:
            pem = cosign.public_key(ref, options(settings, environment))
        else:
            try:
                pem = Path(ref).read_text()
            except OSError as exc:
                raise ConfigError(f"cannot read {environment}'s public key {ref}: {exc.strerror}",
                                  "public_key in moka.yaml; `moka-images dev up` makes the local key pairs") from exc
        try:
            _verifiers[cache] = signatures.load_key(pem)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{environment}'s public key {ref} is unusable: {exc}",
                              "cosign key pairs and KMS keys are ECDSA P-256 (ECC_NIST_P256)") from exc
    return _verifiers[cache]


def fingerprint(pem: str) -> str:
    """A short, stable name for a public key: sha256 of its DER bytes, first 16 hex digits."""
    body = "".join(line for line in pem.strip().splitlines() if line and not line.startswith("-----"))
    return "sha256:" + hashlib.sha256(base64.b64decode(body)).hexdigest()[:16]


def describe(settings: Settings, environment: Environment) -> str:
    """`environment`'s public key for people: the environment and the fingerprint (file) or KMS reference."""
    ref = settings.env(environment).public_key
    path = Path(ref)
    if cosign.is_kms(ref) or not path.is_file():
        return f"{environment} ({ref})"
    return f"{environment} ({fingerprint(path.read_text())})"
