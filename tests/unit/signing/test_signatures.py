"""In-process verification of cosign signatures and attestations (`adapters.signatures`), and the stages that use
it, on signatures made here in cosign's formats with throwaway ECDSA P-256 keys. No processes.

The DSSE pre-authentication encoding is written out here from the spec, not taken from the library under test.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fakes import OCI_CONFIG, OCI_MANIFEST, FakeRegistry, push_image
from securesystemslib.signer import SSlibKey

from moka_images.adapters import cosign, signatures
from moka_images.adapters.registry import digest_of
from moka_images.config.settings import Settings, load_settings
from moka_images.errors import ConfigError
from moka_images.models import SCAN_TYPE, SMOKE_TYPE, Digest, Environment, ImageRef
from moka_images.stages import keys, registries, status
from moka_images.stages.verify import attestations, signing

ROOT = Path(__file__).resolve().parents[3]
A = Digest("sha256:" + "a" * 64)
B = Digest("sha256:" + "b" * 64)
REPO = "moka/unit-sign"
REFERENCE = f"127.0.0.1:15001/{REPO}"
OURS = ec.generate_private_key(ec.SECP256R1())
FOREIGN = ec.generate_private_key(ec.SECP256R1())


def pem(private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


KEY = signatures.load_key(pem(OURS))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sign(private: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    """What cosign puts in the signature annotation or a DSSE `sig`: base64 of an ASN.1 ECDSA-SHA256 signature."""
    return b64(private.sign(data, ec.ECDSA(hashes.SHA256())))


def urlsafe_signature(private: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    """A good signature written in the URL-safe alphabet (signing again until it has a character that differs)."""
    while not any(c in (sig := sign(private, data)) for c in "+/"):
        pass
    return sig.replace("+", "-").replace("/", "_")


def simple_signing(digest: Digest, optional: dict[str, Any] | None = None) -> bytes:
    """The payload `cosign sign` signs."""
    return json.dumps({"critical": {"identity": {"docker-reference": REFERENCE},
                                    "image": {"docker-manifest-digest": str(digest)},
                                    "type": "cosign container image signature"},
                       "optional": optional}).encode()


def signed(private: ec.EllipticCurvePrivateKey, digest: Digest) -> cosign.StoredSignature:
    payload = simple_signing(digest)
    return cosign.StoredSignature(payload, sign(private, payload))


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1's pre-authentication encoding, from the spec."""
    kind = payload_type.encode()
    return b"DSSEv1 " + str(len(kind)).encode() + b" " + kind + b" " + str(len(payload)).encode() + b" " + payload


def statement(digest: Digest, predicate_type: str, predicate: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "predicateType": predicate_type,
                       "subject": [{"name": REFERENCE, "digest": {"sha256": digest.hex}}],
                       "predicate": predicate or {"passed": True}}).encode()


def envelope(private: ec.EllipticCurvePrivateKey, payload: bytes,
             payload_type: str = cosign.IN_TOTO_PAYLOAD) -> cosign.Envelope:
    """What `cosign attest` stores: the statement and one signature over its PAE."""
    return cosign.Envelope(payload_type, payload, (sign(private, pae(payload_type, payload)),))


def tampered(stored: cosign.StoredSignature) -> cosign.StoredSignature:
    return cosign.StoredSignature(stored.payload.replace(b'"optional": null', b'"optional": {"x": "y"}'),
                                  stored.signature)


# ---- keys ---------------------------------------------------------------------------------------------


def test_only_p256_keys_are_loaded() -> None:
    assert KEY.scheme == "ecdsa-sha2-nistp256"
    with pytest.raises(TypeError, match="not an ECDSA P-256"):
        signatures.load_key(pem(ec.generate_private_key(ec.SECP384R1())))
    with pytest.raises(TypeError, match="not an ECDSA P-256"):
        signatures.load_key(pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    with pytest.raises(ValueError):
        signatures.load_key("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")


# ---- signatures (`cosign verify --key`) -------------------------------------------------------------


def test_a_good_signature_verifies_and_says_what_it_vouches_for() -> None:
    check = signatures.check_signatures(KEY, [signed(OURS, A)], A)
    assert check.ok and check.problem is None
    assert check.verified == (cosign.SignedPayload(REFERENCE, A, {}),)


def test_nothing_stored_is_cosigns_no_signatures_found() -> None:
    assert signatures.check_signatures(KEY, [], A) == cosign.SignatureCheck((), "no signatures found")


@pytest.mark.parametrize("case, stored, reason", [
    ("foreign key", signed(FOREIGN, A), "none of 1 signature(s) verifies with the key"),
    ("tampered payload", tampered(signed(OURS, A)), "none of 1 signature(s) verifies with the key"),
    ("wrong digest", signed(OURS, B), f"1 of 1 signature(s) verify with the key but are not for {A.short}"),
    ("malformed base64", cosign.StoredSignature(simple_signing(A), "%%not base64%%"), "none of 1"),
    ("no annotation", cosign.StoredSignature(simple_signing(A), ""), "none of 1"),
    ("base64 of no signature", cosign.StoredSignature(simple_signing(A), b64(b"\x30\x02\x01")), "none of 1"),
    ("url-safe base64 (cosign reads the standard one)",
     cosign.StoredSignature(simple_signing(A), urlsafe_signature(OURS, simple_signing(A))),
     "none of 1"),
    ("signed payload that is not JSON", cosign.StoredSignature(b"{not json", sign(OURS, b"{not json")),
     "1 of 1 signature(s) verify"),
    ("signed JSON without the digest", cosign.StoredSignature(b'{"critical": {}}', sign(OURS, b'{"critical": {}}')),
     "1 of 1 signature(s) verify"),
])
def test_what_cosign_verify_refuses_is_refused(case: str, stored: cosign.StoredSignature, reason: str) -> None:
    check = signatures.check_signatures(KEY, [stored], A)
    assert not check.ok, case
    assert check.problem is not None and check.problem.startswith(f"no matching signatures: {reason}"), check.problem


def test_only_the_good_ones_of_many_count_in_their_order() -> None:
    first, second = signed(OURS, A), cosign.StoredSignature(simple_signing(A, {"n": 2}),
                                                            sign(OURS, simple_signing(A, {"n": 2})))
    check = signatures.check_signatures(KEY, [signed(FOREIGN, A), first, signed(OURS, B), second], A)
    assert [p.annotations for p in check.verified] == [{}, {"n": 2}]


def test_a_verification_is_remembered_by_content(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = signed(OURS, A)
    assert signatures.check_signatures(KEY, [stored], A).ok
    calls = []
    real = SSlibKey.verify_signature
    monkeypatch.setattr(SSlibKey, "verify_signature", lambda self, *a: calls.append(a) or real(self, *a))
    assert signatures.check_signatures(KEY, [stored], A).ok
    assert calls == []
    assert not signatures.check_signatures(KEY, [tampered(stored)], A).ok  # other bytes: verified afresh
    assert len(calls) == 1


# ---- attestations (`cosign verify-attestation --key --type`) -------------------------------------------


def test_a_good_attestation_verifies() -> None:
    good = envelope(OURS, statement(A, SCAN_TYPE))
    assert signatures.verify_envelope(KEY, good)
    assert signatures.verified_attestations(KEY, [good], A, SCAN_TYPE) == [good]


@pytest.mark.parametrize("case, bad", [
    ("foreign key", envelope(FOREIGN, statement(A, SCAN_TYPE))),
    ("tampered statement", cosign.Envelope(cosign.IN_TOTO_PAYLOAD, statement(A, SCAN_TYPE, {"passed": False}),
                                           envelope(OURS, statement(A, SCAN_TYPE)).signatures)),
    ("wrong digest", envelope(OURS, statement(B, SCAN_TYPE))),
    ("another predicate type", envelope(OURS, statement(A, SMOKE_TYPE))),
    ("not in-toto, though signed", envelope(OURS, statement(A, SCAN_TYPE), "application/json")),
    ("signed over the payload, not its PAE", cosign.Envelope(cosign.IN_TOTO_PAYLOAD, statement(A, SCAN_TYPE),
                                                             (sign(OURS, statement(A, SCAN_TYPE)),))),
    ("malformed signature", cosign.Envelope(cosign.IN_TOTO_PAYLOAD, statement(A, SCAN_TYPE), ("!!",))),
    ("no signature", cosign.Envelope(cosign.IN_TOTO_PAYLOAD, statement(A, SCAN_TYPE), ())),
    ("signed statement that is not JSON", envelope(OURS, b"{not json")),
])
def test_what_cosign_verify_attestation_refuses_is_refused(case: str, bad: cosign.Envelope) -> None:
    assert signatures.verified_attestations(KEY, [bad], A, SCAN_TYPE) == [], case


def test_any_signature_of_an_envelope_may_vouch_and_dsse_allows_url_safe_base64() -> None:
    payload = statement(A, SCAN_TYPE)
    good = sign(OURS, pae(cosign.IN_TOTO_PAYLOAD, payload))
    both = cosign.Envelope(cosign.IN_TOTO_PAYLOAD, payload, (sign(FOREIGN, pae(cosign.IN_TOTO_PAYLOAD, payload)), good))
    assert signatures.verify_envelope(KEY, both)
    urlsafe = cosign.Envelope(cosign.IN_TOTO_PAYLOAD, payload,
                              (urlsafe_signature(OURS, pae(cosign.IN_TOTO_PAYLOAD, payload)),))
    assert signatures.verify_envelope(KEY, urlsafe)


# ---- the stages, over an in-memory registry ----------------------------------------------------------


def put_artifact(registry: FakeRegistry, tag: str, layers: list[tuple[str, bytes, dict[str, str]]]) -> None:
    """A cosign-style manifest at `tag`: an empty config and a layer per (media type, blob, annotations)."""
    config = b"{}"
    registry.push_blob(REPO, config)
    entries = []
    for media_type, blob, notes in layers:
        registry.push_blob(REPO, blob)
        entries.append({"mediaType": media_type, "digest": str(digest_of(blob)), "size": len(blob),
                        **({"annotations": notes} if notes else {})})
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": entries,
                      "config": {"mediaType": OCI_CONFIG, "digest": str(digest_of(config)), "size": 2}}).encode()
    registry.put_manifest(REPO, tag, raw, OCI_MANIFEST)


def dsse_layer(env: cosign.Envelope) -> tuple[str, bytes, dict[str, str]]:
    doc = {"payloadType": env.payload_type, "payload": b64(env.payload),
           "signatures": [{"keyid": "", "sig": s} for s in env.signatures]}
    return cosign.DSSE_LAYER, json.dumps(doc).encode(), {}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Settings, FakeRegistry]]:
    """The local profile with test's key ours and dev's foreign, against one in-memory registry."""
    monkeypatch.setenv("MOKA_HOME", str(tmp_path))
    settings = load_settings(ROOT, "local")
    (tmp_path / "test.pub").write_text(pem(OURS))
    (tmp_path / "dev.pub").write_text(pem(FOREIGN))
    envs = dict(settings.environments)
    for env in (Environment.TEST, Environment.DEV):
        envs[env] = envs[env].model_copy(update={"public_key": str(tmp_path / f"{env}.pub")})
    registry = FakeRegistry()
    monkeypatch.setattr(registries, "client", lambda settings, env: registry)
    monkeypatch.setattr(registries, "login_tools", lambda settings, env: pytest.fail("verifying needs no login"))
    yield settings.model_copy(update={"environments": envs}), registry


def test_verify_signature_reads_the_sig_tag_and_checks_it(world: tuple[Settings, FakeRegistry]) -> None:
    settings, registry = world
    ref = ImageRef("127.0.0.1:15001", REPO, digest=A)
    assert signing.verify_signature(settings, Environment.TEST, ref).problem == "no signatures found"
    good, foreign = signed(OURS, A), signed(FOREIGN, A)
    put_artifact(registry, cosign.signature_tag(A), [
        (cosign.SIMPLE_SIGNING_LAYER, s.payload, {cosign.SIGNATURE_ANNOTATION: s.signature}) for s in (foreign, good)])
    assert signing.verify_signature(settings, Environment.TEST, ref).verified == (
        cosign.SignedPayload(REFERENCE, A, {}),)
    dev = signing.verify_signature(settings, Environment.DEV, ref)
    assert dev.verified == (cosign.SignedPayload(REFERENCE, A, {}),)  # the foreign key is dev's here
    put_artifact(registry, cosign.signature_tag(B), [
        (cosign.SIMPLE_SIGNING_LAYER, good.payload, {cosign.SIGNATURE_ANNOTATION: good.signature})])
    wrong = signing.verify_signature(settings, Environment.TEST, ImageRef("127.0.0.1:15001", REPO, digest=B))
    assert not wrong.ok and wrong.problem is not None and "not for" in wrong.problem


def test_audit_sorts_stored_attestations_by_trusted_key(world: tuple[Settings, FakeRegistry]) -> None:
    settings, registry = world
    ref = ImageRef("127.0.0.1:15001", REPO, digest=A)
    stored = [envelope(OURS, statement(A, SCAN_TYPE, {"n": 1})), envelope(FOREIGN, statement(A, SMOKE_TYPE)),
              envelope(OURS, statement(B, SCAN_TYPE, {"n": 3}))]
    put_artifact(registry, cosign.attestation_tag(A), [dsse_layer(e) for e in stored])
    in_test = attestations.audit(settings, Environment.TEST, ref)
    assert [(a.predicate, a.signer) for a in in_test.valid] == [({"n": 1}, Environment.TEST)]
    assert sorted((r.predicate_type, r.reason) for r in in_test.rejected) == [
        (SCAN_TYPE, "no signature by the key of test"), (SMOKE_TYPE, "no signature by the key of test")]
    in_dev = attestations.audit(settings, Environment.DEV, ref)
    assert [(a.predicate_type, a.signer) for a in in_dev.valid] == [(SCAN_TYPE, Environment.TEST),
                                                                     (SMOKE_TYPE, Environment.DEV)]
    assert attestations.audit(settings, Environment.TEST, ref, "smoke", trusted=[Environment.DEV]).rejected == ()


def test_an_audit_of_one_kind_fetches_only_layers_cosign_annotated_with_its_type(
        world: tuple[Settings, FakeRegistry], monkeypatch: pytest.MonkeyPatch) -> None:
    settings, registry = world
    ref = ImageRef("127.0.0.1:15001", REPO, digest=A)
    scan, smoke = envelope(OURS, statement(A, SCAN_TYPE, {"n": 1})), envelope(OURS, statement(A, SMOKE_TYPE))
    unannotated = envelope(OURS, statement(A, SMOKE_TYPE, {"n": 2}))
    layers = [dsse_layer(scan), dsse_layer(smoke), dsse_layer(unannotated)]
    layers[0][2][cosign.PREDICATE_TYPE_ANNOTATION] = SCAN_TYPE
    layers[1][2][cosign.PREDICATE_TYPE_ANNOTATION] = SMOKE_TYPE
    put_artifact(registry, cosign.attestation_tag(A), layers)
    fetched: list[Digest] = []
    read = registry.get_blob
    monkeypatch.setattr(registry, "get_blob", lambda repo, digest: fetched.append(digest) or read(repo, digest))
    found = attestations.audit(settings, Environment.TEST, ref, "smoke")
    assert [a.predicate for a in found.valid] == [{"passed": True}, {"n": 2}]
    assert digest_of(layers[0][1]) not in fetched and len(fetched) == 2  # the unannotated one is read to know
    both = attestations.audit(settings, Environment.TEST, ref, (attestations.AttestationKind.SCAN, "smoke"))
    assert [a.kind for a in both.valid] == ["scan", "smoke", "smoke"]
    assert attestations.audit(settings, Environment.TEST, ref, ["sbom", "promotion"]).valid == ()


def test_a_file_key_is_read_once_and_a_kms_key_fetched_once_per_environment(
        world: tuple[Settings, FakeRegistry], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings, _ = world
    first = keys.verifier(settings, Environment.TEST)
    (tmp_path / "test.pub").write_text(pem(FOREIGN))  # not read again in this run
    assert keys.verifier(settings, Environment.TEST) is first
    fetched: list[str] = []
    monkeypatch.setattr(cosign, "public_key", lambda key, opts: fetched.append(key) or pem(OURS))
    monkeypatch.setattr(keys, "kms_env", lambda settings, env: {})
    ref = f"awskms:///alias/unit-{tmp_path.name}"
    envs = {e: c.model_copy(update={"public_key": ref}) for e, c in settings.environments.items()}
    kms = settings.model_copy(update={"environments": envs})
    for _ in range(3):
        keys.verifier(kms, Environment.TEST)
        keys.verifier(kms, Environment.DEV)
    assert fetched == [ref, ref]  # one alias, two accounts: two keys, each fetched once


def test_an_unusable_public_key_is_a_config_error(world: tuple[Settings, FakeRegistry], tmp_path: Path) -> None:
    settings, _ = world
    envs = dict(settings.environments)
    envs[Environment.STAGING] = envs[Environment.STAGING].model_copy(update={"public_key": str(tmp_path / "none")})
    (tmp_path / "rsa.pub").write_text(pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    envs[Environment.PROD] = envs[Environment.PROD].model_copy(update={"public_key": str(tmp_path / "rsa.pub")})
    broken = settings.model_copy(update={"environments": envs})
    with pytest.raises(ConfigError, match="cannot read staging's public key"):
        keys.verifier(broken, Environment.STAGING)
    with pytest.raises(ConfigError, match="prod's public key .* is unusable: not an ECDSA P-256"):
        keys.verifier(broken, Environment.PROD)


def test_status_verifies_every_cell_in_process_with_each_environments_key(
        world: tuple[Settings, FakeRegistry], monkeypatch: pytest.MonkeyPatch) -> None:
    settings, registry = world
    monkeypatch.setattr(registries, "credentials", lambda settings, env: None)  # no ECR: one fake registry
    for env in (Environment.STAGING, Environment.PROD):  # keys of their own, that signed nothing here
        Path(settings.env(env).public_key).parent.mkdir(parents=True, exist_ok=True)
        Path(settings.env(env).public_key).write_text(pem(ec.generate_private_key(ec.SECP256R1())))
    pushed = push_image(registry, settings.repository("unit-sign"), "1.2.0", seed="status")
    digest = pushed.digest
    put_artifact(registry, cosign.signature_tag(digest), [
        (cosign.SIMPLE_SIGNING_LAYER, s.payload, {cosign.SIGNATURE_ANNOTATION: s.signature})
        for s in (signed(OURS, digest),)])
    smoke = {"passed": True, "image": {"digest": str(digest)}, "platforms": []}
    scan = {"verdict": {"allowed": True, "environment": "test"}}
    put_artifact(registry, cosign.attestation_tag(digest), [
        dsse_layer(envelope(OURS, statement(digest, SMOKE_TYPE, smoke))),
        dsse_layer(envelope(OURS, statement(digest, SCAN_TYPE, scan)))])
    (row,) = status.collect(settings, ["unit-sign"])  # the unit guard fails any process it would start
    test, dev = row.cells[0], row.cells[1]
    assert (test.digest, test.version, test.signed, test.scan, test.smoke) == (
        digest, "1.2.0", True, "allowed (test policy)", "passed")
    assert (dev.digest, dev.signed, dev.smoke) == (digest, False, "passed")  # dev's key signed nothing
    assert row.notes == ("drift: not declared in the manifests",)
