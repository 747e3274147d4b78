"""The in-process verifier (`adapters.signatures`) against the cosign CLI, the reference: the same signatures and
attestations, verified both ways with the same keys, must get the same answers, and the expected ones.

Needs the local stack (`moka-images dev up`). Small images are pushed through the registry API into a fresh
repository `itest-parity/parity-<run>` of the test registry and signed and attested with the real cosign CLI:
with test's key (good), with a foreign key pair made here (foreign), with test's key and then rewritten in the
registry (tampered: a changed payload under the original signature), or not at all; `wrong-digest` carries
another image's `.sig` and `.att` manifests under its own tags (signatures made for another digest).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cosign_reference
import pytest
from ci_support import unavailable
from promote_support import push_image, suite_settings

from moka_images.adapters import cosign, run, signatures
from moka_images.adapters.registry import OCI_MANIFEST, RegistryClient
from moka_images.config.settings import Settings
from moka_images.errors import ToolMissingError
from moka_images.models import SCAN_TYPE, SMOKE_TYPE, Digest, Environment, ImageRef
from moka_images.stages import keys, registries
from moka_images.stages.verify import attestations, signing

pytestmark = pytest.mark.integration

TEST = Environment.TEST
PREFIX = "itest-parity"
RUN = uuid.uuid4().hex[:8]
TYPES = (SCAN_TYPE, SMOKE_TYPE)
PLAIN_HTTP = cosign.Options(plain_http=True)


@dataclass(frozen=True)
class Key:
    """A key pair as cosign uses it: the private key file and its password, the public key file."""

    name: str
    private: str
    public: str
    password: str

    def signing(self) -> cosign.Options:
        return cosign.Options(plain_http=True, env={"COSIGN_PASSWORD": self.password})


@dataclass(frozen=True)
class World:
    settings: Settings
    client: RegistryClient
    keys: dict[str, Key]
    images: dict[str, ImageRef]


def _predicate(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _rewrite_layers(client: RegistryClient, repository: str, tag: str, change: Callable[[bytes], bytes]) -> None:
    """Put the manifest at `tag` back with every layer's blob changed by `change`, annotations (the signatures)
    kept, and the config's diff_ids following the layers, as a registry-side forger would."""
    manifest = client.get_manifest(repository, tag).json
    config = json.loads(client.get_blob(repository, Digest(manifest["config"]["digest"])))
    for layer in manifest["layers"]:
        blob = change(client.get_blob(repository, Digest(layer["digest"])))
        new = str(client.push_blob(repository, blob))
        config["rootfs"]["diff_ids"] = [new if d == layer["digest"] else d for d in config["rootfs"]["diff_ids"]]
        layer.update(digest=new, size=len(blob))
    raw_config = json.dumps(config).encode()
    manifest["config"].update(digest=str(client.push_blob(repository, raw_config)), size=len(raw_config))
    client.put_manifest(repository, tag, json.dumps(manifest).encode(), OCI_MANIFEST)


def _tamper_payload(blob: bytes) -> bytes:
    doc = json.loads(blob)
    doc["optional"] = {"tampered": "yes"}  # same digest named, so only the signature can tell
    return json.dumps(doc).encode()


def _tamper_envelope(blob: bytes) -> bytes:
    doc = json.loads(blob)
    statement = json.loads(base64.b64decode(doc["payload"]))
    statement["predicate"]["verdict"]["allowed"] = True
    doc["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return json.dumps(doc).encode()


SCAN = {"scanner": {"name": "trivy", "version": "0.76.0"}, "platforms": [],
        "verdict": {"environment": "test", "allowed": False, "blocking": [{}], "waived": [], "run": RUN}}
SMOKE = {"passed": True, "backend": "itest", "platforms": [], "run": RUN}


@pytest.fixture(scope="module")
def world(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> World:
    try:
        run.require("cosign")
    except ToolMissingError:
        unavailable("cosign is not installed")
    settings = suite_settings(stack, PREFIX)
    registries.login_tools(settings, TEST)
    tmp = tmp_path_factory.mktemp("parity")
    password = uuid.uuid4().hex
    cosign.generate_key_pair(tmp / "foreign.key", tmp / "foreign.pub", password)
    test_cfg = settings.env(TEST)
    pairs = {"test": Key("test", test_cfg.signing_key, test_cfg.public_key, keys.password(TEST, test_cfg.signing_key)),
             "foreign": Key("foreign", str(tmp / "foreign.key"), str(tmp / "foreign.pub"), password)}
    client = registries.client(settings, TEST)
    repo = settings.repository(f"parity-{RUN}")
    images = {name: ImageRef(test_cfg.registry, repo, digest=push_image(client, repo, "1.0.0", seed=f"{name}-{RUN}",
                                                                        tags=()).digest)
              for name in ("good", "foreign", "tampered", "wrong-digest", "unsigned", "mixed")}
    scan, smoke = _predicate(tmp / "scan.json", SCAN), _predicate(tmp / "smoke.json", SMOKE)

    def sign(image: str, key: str) -> None:
        cosign.sign_all([images[image]], pairs[key].private, pairs[key].signing())

    def attest(image: str, key: str, predicate_type: str, predicate: Path) -> None:
        cosign.attest(images[image], pairs[key].private, predicate_type, predicate, pairs[key].signing())

    sign("good", "test")
    attest("good", "test", SCAN_TYPE, scan)
    attest("good", "foreign", SMOKE_TYPE, smoke)
    sign("foreign", "foreign")
    attest("foreign", "foreign", SMOKE_TYPE, smoke)
    sign("tampered", "test")
    attest("tampered", "test", SCAN_TYPE, scan)
    _rewrite_layers(client, repo, cosign.signature_tag(images["tampered"].digest), _tamper_payload)
    _rewrite_layers(client, repo, cosign.attestation_tag(images["tampered"].digest), _tamper_envelope)
    for tag in (cosign.signature_tag, cosign.attestation_tag):  # good's signatures, for good's digest
        raw = client.get_manifest(repo, tag(images["good"].digest)).raw
        client.put_manifest(repo, tag(images["wrong-digest"].digest), raw, OCI_MANIFEST)
    sign("mixed", "foreign")
    sign("mixed", "test")
    attest("mixed", "test", SCAN_TYPE, scan)
    attest("mixed", "foreign", SMOKE_TYPE, smoke)
    return World(settings, client, pairs, images)


NO_MATCH, NONE_FOUND = "no matching signatures", "no signatures found"
# image -> key -> (signatures that verify, cosign's reason when none, {predicate type: attestations that verify})
EXPECTED: dict[str, dict[str, tuple[int, str | None, dict[str, int]]]] = {
    "good": {"test": (1, None, {SCAN_TYPE: 1, SMOKE_TYPE: 0}), "foreign": (0, NO_MATCH, {SCAN_TYPE: 0, SMOKE_TYPE: 1})},
    "foreign": {"test": (0, NO_MATCH, {SCAN_TYPE: 0, SMOKE_TYPE: 0}),
                "foreign": (1, None, {SCAN_TYPE: 0, SMOKE_TYPE: 1})},
    "tampered": {"test": (0, NO_MATCH, {SCAN_TYPE: 0, SMOKE_TYPE: 0}),
                 "foreign": (0, NO_MATCH, {SCAN_TYPE: 0, SMOKE_TYPE: 0})},
    "wrong-digest": {"test": (0, NO_MATCH, {SCAN_TYPE: 0, SMOKE_TYPE: 0}),
                     "foreign": (0, NO_MATCH, {SCAN_TYPE: 0, SMOKE_TYPE: 0})},
    "unsigned": {"test": (0, NONE_FOUND, {SCAN_TYPE: 0, SMOKE_TYPE: 0}),
                 "foreign": (0, NONE_FOUND, {SCAN_TYPE: 0, SMOKE_TYPE: 0})},
    "mixed": {"test": (1, None, {SCAN_TYPE: 1, SMOKE_TYPE: 0}), "foreign": (1, None, {SCAN_TYPE: 0, SMOKE_TYPE: 1})},
}


def _reason(problem: str | None) -> str | None:
    """cosign's sentence without its details (which name Go's errors, not ours)."""
    return problem.split(":")[0] if problem else None


def _ordered(envelopes: list[cosign.Envelope]) -> list[cosign.Envelope]:
    return sorted(envelopes, key=lambda e: (e.payload, e.signatures))  # cosign prints in no fixed order


@pytest.mark.parametrize("image, key", [(i, k) for i in EXPECTED for k in ("test", "foreign")])
def test_in_process_verification_answers_as_cosign_does(world: World, image: str, key: str) -> None:
    ref, pair = world.images[image], world.keys[key]
    assert ref.digest is not None
    public = signatures.load_key(Path(pair.public).read_text())
    count, reason, attested = EXPECTED[image][key]

    by_cosign = cosign_reference.verify(ref, pair.public, PLAIN_HTTP)
    in_process = signatures.check_signatures(public, cosign.stored_signatures(world.client, ref), ref.digest)
    assert in_process.verified == by_cosign.verified
    assert _reason(in_process.problem) == _reason(by_cosign.problem)
    assert (len(in_process.verified), _reason(in_process.problem)) == (count, reason), in_process.problem
    assert all(p.manifest_digest == ref.digest for p in in_process.verified)

    stored = cosign.stored_attestations(world.client, ref)
    for predicate_type in TYPES:
        by_cosign_att = cosign_reference.verify_attestations(ref, pair.public, predicate_type, PLAIN_HTTP)
        in_process_att = signatures.verified_attestations(public, stored, ref.digest, predicate_type)
        assert _ordered(in_process_att) == _ordered(by_cosign_att), predicate_type
        assert len(in_process_att) == attested[predicate_type], predicate_type


@pytest.mark.parametrize("image", list(EXPECTED))
def test_the_stages_answer_with_the_environments_key_as_cosign_does(world: World, image: str) -> None:
    """`verify_signature` and `audit` (registry client, key read once) give test's key's answers above."""
    ref = world.images[image]
    count, reason, attested = EXPECTED[image]["test"]
    check = signing.verify_signature(world.settings, TEST, ref)
    assert (len(check.verified), _reason(check.problem)) == (count, reason)
    found = attestations.audit(world.settings, TEST, ref)
    assert sorted(a.predicate_type for a in found.valid) == sorted(t for t, n in attested.items() for _ in range(n))
    assert len(found.valid) + len(found.rejected) == len(cosign.stored_attestations(world.client, ref))
