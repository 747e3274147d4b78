"""cosign 2.x: key pairs, signatures and in-toto attestations on image digests, parsed into values.

Nothing here talks to Rekor or Fulcio: keys come from files or a KMS and signing never uploads to a
transparency log (`--tlog-upload=false`), so the only connections are to the registry (and the KMS, when the
key lives there). Registry logins come from the docker config (`registries.login_tools`). The cosign CLI only
signs and attests; what it stored (`.sig` and `.att` tags) is read with our own registry client and verified
in-process (`adapters.signatures`).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moka_images.adapters import run
from moka_images.adapters.registry import Registry
from moka_images.adapters.retry import Policy
from moka_images.errors import CommandFailed, ServiceError
from moka_images.models import Digest, ImageRef

KMS_SCHEMES = ("awskms://", "gcpkms://", "azurekms://", "hashivault://", "k8s://")
IN_TOTO_PAYLOAD = "application/vnd.in-toto+json"
DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"
SIMPLE_SIGNING_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_TYPE_ANNOTATION = "predicateType"  # what cosign attest writes on each .att layer
_TIMEOUT = 300.0
_RETRY = Policy(attempts=4, first=1.0)  # a transient registry failure: waits of 1, 2 and 4 s


def is_kms(key: str) -> bool:
    """Whether a key reference names a KMS key (passed to cosign as it is) rather than a file."""
    return key.startswith(KMS_SCHEMES)


@dataclass(frozen=True)
class Options:
    """How cosign reaches the registry and the key: plain HTTP for loopback, extra environment for the key."""

    plain_http: bool = False
    env: Mapping[str, str] = field(default_factory=dict)  # COSIGN_PASSWORD, AWS_* for awskms://

    def registry_flags(self) -> list[str]:
        """Flags that let cosign use a plain-HTTP registry (only ever set for loopback registries)."""
        return ["--allow-http-registry", "--allow-insecure-registry"] if self.plain_http else []


@dataclass(frozen=True)
class SignedPayload:
    """What a verified cosign signature vouches for: the 'simple signing' payload."""

    docker_reference: str
    manifest_digest: Digest
    annotations: Mapping[str, Any]


@dataclass(frozen=True)
class SignatureCheck:
    """The signatures that verified with one public key, or why none did (in cosign's words)."""

    verified: tuple[SignedPayload, ...]
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """At least one signature verified."""
        return bool(self.verified)


@dataclass(frozen=True)
class StoredSignature:
    """One signature as cosign stores it in the `.sig` tag, NOT verified: the payload and its base64 signature."""

    payload: bytes
    signature: str


@dataclass(frozen=True)
class Subject:
    """One subject of an in-toto statement: a name and its sha256 digest."""

    name: str
    digest: Digest | None


@dataclass(frozen=True)
class Statement:
    """An in-toto statement: a predicate of some type about some subjects."""

    statement_type: str
    predicate_type: str
    subjects: tuple[Subject, ...]
    predicate: Mapping[str, Any]

    def covers(self, digest: Digest) -> bool:
        """Whether `digest` is one of the subjects."""
        return any(s.digest == digest for s in self.subjects)


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope as cosign stores it in the `.att` tag: a payload and its signatures."""

    payload_type: str
    payload: bytes
    signatures: tuple[str, ...]

    def statement(self) -> Statement:
        """The in-toto statement inside; ServiceError if it is not one."""
        if self.payload_type != IN_TOTO_PAYLOAD:
            raise ServiceError(f"attestation payload is {self.payload_type!r}, not {IN_TOTO_PAYLOAD}")
        return parse_statement(self.payload)


# ---- parsing (pure) ----------------------------------------------------------------------------


def _json_values(text: str) -> list[Any]:
    """Every JSON value in `text`, however cosign spaced them (one a line, or a bare array)."""
    decoder, out, pos = json.JSONDecoder(), [], 0
    text = text.strip()
    while pos < len(text):
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ServiceError(f"cosign printed something that is not JSON: {text[pos:pos + 120]!r}") from exc
        out.append(value)
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def parse_envelopes(text: str) -> list[Envelope]:
    """DSSE envelopes as stored in `.att` layers or printed by `cosign verify-attestation`."""
    envelopes = []
    for doc in _json_values(text):
        try:
            payload = base64.b64decode(doc["payload"], validate=True)
            sigs = tuple(s.get("sig", "") for s in doc.get("signatures") or [])
            envelopes.append(Envelope(doc["payloadType"], payload, sigs))
        except (KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise ServiceError(f"cosign printed an attestation that is not a DSSE envelope ({exc})") from exc
    return envelopes


def parse_statement(payload: bytes) -> Statement:
    """An in-toto statement from a DSSE payload."""
    try:
        doc = json.loads(payload)
        subjects = tuple(
            Subject(s.get("name", ""), Digest("sha256:" + s["digest"]["sha256"]) if "sha256" in s.get("digest", {})
                    else None)
            for s in doc.get("subject") or [])
        predicate = doc.get("predicate")
        if not isinstance(predicate, dict):
            raise TypeError("the predicate is not a JSON object")
        return Statement(doc["_type"], doc["predicateType"], subjects, predicate)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ServiceError(f"attestation payload is not an in-toto statement ({exc})") from exc


# ---- commands ----------------------------------------------------------------------------------


def _digest(ref: ImageRef) -> Digest:
    if ref.digest is None:
        raise ValueError(f"{ref} is not pinned to a digest; cosign is only ever pointed at digests")
    return ref.digest


def _pinned(ref: ImageRef) -> str:
    return f"{ref.name}@{_digest(ref)}"


def is_transient(output: str) -> bool:
    """Whether cosign failed on a registry answer worth retrying: throttling (429) or a server error (5xx)."""
    return re.search(r"\b(429|500|502|503|504)\b|TOOMANYREQUESTS|Too Many Requests|Service Unavailable",
                     output) is not None


def _call(argv: list[str], opts: Options) -> run.Completed:
    """Run cosign; a failure on a throttled or failing registry is retried with backoff (cosign does not)."""
    done = _RETRY.call(lambda: run.call(argv, env=dict(opts.env), timeout=_TIMEOUT, check=False),
                       retry_result=lambda d: d.returncode != 0 and is_transient(d.stderr))
    if done.returncode != 0:
        raise CommandFailed(done.argv, done.returncode, "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:]),
                            "cosign reads registry logins from the docker config; keys come from moka.yaml")
    return done


def generate_key_pair(private: Path, public: Path, password: str) -> None:
    """Write a new encrypted key pair to `private` and `public` (cosign names them itself, so via a temp dir)."""
    private.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    public.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=private.parent, prefix=".keygen-") as tmp:
        run.call(["cosign", "generate-key-pair", "--output-key-prefix", "cosign"], cwd=Path(tmp),
                 env={"COSIGN_PASSWORD": password}, timeout=_TIMEOUT)
        os.replace(Path(tmp) / "cosign.pub", public)
        os.replace(Path(tmp) / "cosign.key", private)


def public_key(key: str, opts: Options) -> str:
    """The PEM public key of a signing key (a file, with its password, or a KMS key)."""
    return _call(["cosign", "public-key", "--key", key], opts).stdout


def sign_all(refs: Sequence[ImageRef], key: str, opts: Options) -> None:
    """Sign the manifest at each ref's digest in one cosign process (the key is decrypted once: with a key file
    that is most of a signature's cost); cosign adds each signature to its `sha256-<hex>.sig` tag."""
    _call(["cosign", "sign", "--key", key, "--tlog-upload=false", "--yes", *opts.registry_flags(),
           *(_pinned(ref) for ref in refs)], opts)


def attest(ref: ImageRef, key: str, predicate_type: str, predicate: Path, opts: Options, *,
           replace: bool = False) -> None:
    """Sign an in-toto statement of `predicate` about `ref`'s digest and append it to the `.att` tag.

    `replace` drops earlier attestations of the same type first. Either way cosign rewrites the `.att` tag,
    which is why immutable-tag repositories exempt `sha256-*` tags.
    """
    _call(["cosign", "attest", "--key", key, "--type", predicate_type, "--predicate", str(predicate),
           "--tlog-upload=false", "--yes", f"--replace={str(replace).lower()}", *opts.registry_flags(),
           _pinned(ref)], opts)


def signature_tag(digest: Digest) -> str:
    """The tag under which cosign keeps the signatures of `digest`."""
    return f"sha256-{digest.hex}.sig"


def attestation_tag(digest: Digest) -> str:
    """The tag under which cosign keeps the attestations of `digest`."""
    return f"sha256-{digest.hex}.att"


def _layers(client: Registry, repository: str, tag: str, media_type: str,
            keep: Callable[[dict[str, Any]], bool] = lambda layer: True) -> list[tuple[dict[str, Any], bytes]]:
    """The layers of `media_type` in the manifest at `tag` that `keep` accepts, with their blobs, in order; none
    without the tag. The manifest is read in one request; its blobs, read by digest, once per client."""
    manifest = client.find_manifest(repository, tag)
    if manifest is None:
        return []
    layers = manifest.json.get("layers") or []
    return [(layer, client.get_blob(repository, Digest(layer["digest"]))) for layer in layers
            if layer.get("mediaType") == media_type and keep(layer)]


def stored_signatures(client: Registry, ref: ImageRef) -> list[StoredSignature]:
    """Every signature stored for `ref`'s digest, oldest first, NOT verified.

    A layer without the signature annotation is kept with an empty signature: found, and never verifying.
    """
    return [StoredSignature(blob, str((layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION, "")))
            for layer, blob in _layers(client, ref.repository, signature_tag(_digest(ref)), SIMPLE_SIGNING_LAYER)]


def stored_attestations(client: Registry, ref: ImageRef, predicate_types: Collection[str] | None = None
                        ) -> list[Envelope]:
    """Every attestation stored for `ref`'s digest (of `predicate_types`), oldest first, NOT verified.

    Read from the `.att` manifest (one DSSE layer per attestation, appended in order) rather than through
    `cosign download attestation`, which does not keep that order. A layer that cosign annotated with another
    predicate type is not even fetched (an SBOM is megabytes); the statement inside still decides.
    """
    def wanted(layer: dict[str, Any]) -> bool:
        said = (layer.get("annotations") or {}).get(PREDICATE_TYPE_ANNOTATION)
        return predicate_types is None or not said or said in predicate_types

    return [envelope for _, blob in _layers(client, ref.repository, attestation_tag(_digest(ref)), DSSE_LAYER, wanted)
            for envelope in parse_envelopes(blob.decode())]
