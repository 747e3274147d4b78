"""Real cosign against real images in the local test registry: signatures, attestations and `moka-images verify`.

Needs the local stack (`moka-images dev up`). A tiny two-platform image is built once per session under
`moka/itest-sign` (the OS base plus one file unique to the run); each test gets its own index digest (same
platform manifests, a different annotation), so what one test signs never shows up in another. Keys are the
environments' real local keys in settings.home/keys, made by `ensure_keys` as `dev up` does.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from ci_support import unavailable

from moka_images.adapters import buildx, cosign, ecr, run
from moka_images.config import os_base
from moka_images.config.settings import Settings
from moka_images.models import ALL_PLATFORMS, SMOKE_TYPE, Environment, ImageRef
from moka_images.stages import images, keys, registries, repositories
from moka_images.stages.images import resolve
from moka_images.stages.verify import attestations, signing

pytestmark = pytest.mark.integration

TEST, DEV = Environment.TEST, Environment.DEV
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE = "itest-sign"
RUN = uuid.uuid4().hex[:12]
SCAN = {"scanner": {"name": "trivy", "version": "0.76.0"}, "platforms": [{}, {}],
        "verdict": {"environment": "test", "allowed": True, "blocking": [], "waived": [], "run": RUN}}


def _cosign(*args: str) -> subprocess.CompletedProcess[str]:
    """The real cosign binary, exactly as a person would run it."""
    return subprocess.run([run.require("cosign"), *args], check=False, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def signed_settings(stack: Settings) -> Settings:
    """The local profile with every environment's key pair present."""
    keys.ensure_keys(stack)
    registries.login_tools(stack, TEST)
    return stack


@pytest.fixture(scope="session")
def built(signed_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> ImageRef:
    """The product's build path: one build per platform, merged into an index; the OS base plus a run file."""
    settings = signed_settings
    ctx = tmp_path_factory.mktemp("itest-sign")
    base = os_base.read_lock(settings)
    (ctx / "Dockerfile").write_text(
        f"FROM {settings.mirror}/{settings.os_base.repository}@{base.digest}\nCOPY run.txt /etc/moka-itest-run\n")
    (ctx / "run.txt").write_text(RUN + "\n")
    registry, repo = settings.env(TEST).registry, settings.repository(IMAGE)
    per_arch = [ImageRef(registry, repo, digest=buildx.build_platform(
        ctx, p, ImageRef(registry, repo, f"{RUN}-{p.arch}"))) for p in ALL_PLATFORMS]
    index = images.write_index(registries.client(settings, TEST), repo, RUN, [ref.digest for ref in per_arch])
    return ImageRef(registry, repo, RUN, index)


@pytest.fixture
def image(signed_settings: Settings, built: ImageRef, request: pytest.FixtureRequest) -> ImageRef:
    """A fresh index digest for this test: the built index's platform manifests in an OCI index annotated with
    the test's name, tagged `<run>-<test>`; so what one test signs never shows up in another."""
    client = registries.client(signed_settings, TEST)
    manifests = client.get_manifest(built.repository, str(built.digest)).json["manifests"]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests,
             "annotations": {"dev.moka-images.itest": request.node.name}}
    tag = f"{RUN}-{request.node.name.removeprefix('test_')[:40]}"
    digest = client.put_manifest(built.repository, tag, json.dumps(index).encode(), OCI_INDEX)
    return ImageRef(built.registry, built.repository, tag, digest)  # str() is the digest form


def _pub(settings: Settings, env: Environment) -> str:
    return settings.env(env).public_key


def test_ensure_keys_makes_working_pairs_once(signed_settings: Settings, tmp_path: Path) -> None:
    envs = {e: cfg.model_copy(update={"signing_key": str(tmp_path / "k" / f"{e}.key"),
                                      "public_key": str(tmp_path / "k" / f"{e}.pub")})
            for e, cfg in signed_settings.environments.items()}
    fresh = signed_settings.model_copy(update={"home": tmp_path, "environments": envs})
    assert keys.ensure_keys(fresh) == list(Environment)
    assert keys.ensure_keys(fresh) == []
    assert oct((tmp_path / "k" / "test.password").stat().st_mode & 0o777) == "0o600"
    derived = cosign.public_key(envs[TEST].signing_key, keys.options(fresh, TEST, signing=True))
    assert keys.fingerprint(derived) == keys.fingerprint(Path(envs[TEST].public_key).read_text())
    assert keys.fingerprint(derived) != keys.fingerprint(Path(envs[DEV].public_key).read_text())


def test_signature_verifies_with_its_environment_key_only(signed_settings: Settings, image: ImageRef) -> None:
    settings = signed_settings
    assert signing.sign(settings, TEST, image) is True
    done = _cosign("verify", "--key", _pub(settings, TEST), "--insecure-ignore-tlog=true", "--allow-http-registry",
                   str(image))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["critical"]["image"]["docker-manifest-digest"] == str(image.digest)
    other = _cosign("verify", "--key", _pub(settings, DEV), "--insecure-ignore-tlog=true", "--allow-http-registry",
                    str(image))
    assert other.returncode != 0 and "no matching signatures" in other.stderr
    # idempotent: nothing new is pushed the second time
    client = registries.client(settings, TEST)
    sig_tag = f"sha256-{image.digest.hex}.sig"
    before = client.head_manifest(image.repository, sig_tag)
    assert signing.sign(settings, TEST, image) is False
    assert client.head_manifest(image.repository, sig_tag) == before
    assert client.head_manifest(image.repository, str(image.tag)) == image.digest  # no image tag was touched


def test_attestation_verifies_with_real_cosign_and_reads_back(signed_settings: Settings, image: ImageRef) -> None:
    settings = signed_settings
    assert attestations.attest(settings, TEST, image, "scan", SCAN) is True
    done = _cosign("verify-attestation", "--key", _pub(settings, TEST), "--type", attestations.SCAN_TYPE,
                   "--insecure-ignore-tlog=true", "--allow-http-registry", str(image))
    assert done.returncode == 0, done.stderr
    statement = json.loads(base64.b64decode(json.loads(done.stdout.splitlines()[0])["payload"]))
    assert statement["predicate"] == SCAN
    assert statement["subject"][0]["digest"]["sha256"] == image.digest.hex
    wrong = _cosign("verify-attestation", "--key", _pub(settings, DEV), "--type", attestations.SCAN_TYPE,
                    "--insecure-ignore-tlog=true", "--allow-http-registry", str(image))
    assert wrong.returncode != 0

    [found] = attestations.read_attestations(settings, TEST, image, "scan")
    assert (found.kind, found.signer, found.subject) == (attestations.AttestationKind.SCAN, TEST, image.digest)
    assert found.predicate == SCAN
    assert attestations.attest(settings, TEST, image, "scan", SCAN) is False  # the same predicate: no-op

    sbom = {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"name": "glibc", "version": "2.36"}]}
    assert attestations.attest(settings, TEST, image, attestations.AttestationKind.SBOM, sbom)
    cyclonedx = _cosign("verify-attestation", "--key", _pub(settings, TEST), "--type", "cyclonedx",
                        "--insecure-ignore-tlog=true", "--allow-http-registry", str(image))
    assert cyclonedx.returncode == 0, cyclonedx.stderr
    assert [a.kind for a in attestations.read_attestations(settings, TEST, image)] == [
        attestations.AttestationKind.SCAN, attestations.AttestationKind.SBOM]


def test_attestation_by_another_key_is_reported_not_returned(signed_settings: Settings, image: ImageRef,
                                                            tmp_path: Path) -> None:
    settings = signed_settings
    assert attestations.attest(settings, TEST, image, "smoke", {"passed": True, "platforms": []})
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({"passed": True, "platforms": [], "by": "dev"}))
    cosign.attest(image, settings.env(DEV).signing_key, SMOKE_TYPE, forged,
                  keys.options(settings, DEV, registry_env=TEST, signing=True))
    audit = attestations.audit(settings, TEST, image)
    assert [a.predicate for a in audit.valid] == [{"passed": True, "platforms": []}]
    assert [(r.predicate_type, r.reason) for r in audit.rejected] == [
        (SMOKE_TYPE, "no signature by the key of test")]
    assert [a.predicate for a in attestations.read_attestations(settings, TEST, image, "smoke")] == [
        {"passed": True, "platforms": []}]
    # trusting dev's key as well (as verifying in dev would) accepts it, and names dev as its signer
    signers = {a.signer for a in attestations.audit(settings, TEST, image, trusted=[DEV, TEST]).valid}
    assert signers == {DEV, TEST}
    assert signing.sign(settings, TEST, image)
    assert not signing.verify(settings, TEST, image).ok


def test_cli_sign_attest_verify(signed_settings: Settings, image: ImageRef, tmp_path: Path) -> None:
    settings = signed_settings
    tag = str(image.tag)
    resolved = resolve(settings, TEST, f"{IMAGE}:{tag}")
    assert (resolved.ref.digest, resolved.name, resolved.tag) == (image.digest, IMAGE, tag)
    cli = [sys.executable, "-m", "moka_images.cli"]
    env = {**os.environ, "MOKA_ROOT": str(settings.root), "COLUMNS": "200"}  # no table wrapping

    def moka(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], check=False, capture_output=True, text=True, timeout=300, env=env)

    unsigned = moka("verify", f"{IMAGE}:{tag}", "--env", "test")
    assert unsigned.returncode == 7 and "NOT verified" in unsigned.stdout
    assert moka("sign", f"{IMAGE}:{tag}", "--env", "test").returncode == 0
    predicate = tmp_path / "scan.json"
    predicate.write_text(json.dumps(SCAN))
    attested = moka("attest", f"{IMAGE}:{tag}", "--env", "test", "--type", "scan", "--predicate", str(predicate))
    assert attested.returncode == 0, attested.stderr
    shown = moka("verify", f"{IMAGE}@{image.digest}", "--env", "test")
    assert shown.returncode == 0, shown.stderr
    assert "signature: verified with test" in shown.stdout
    assert "allowed by test policy: 0 blocking, 0 waived (trivy 0.76.0, 2 platforms)" in shown.stdout
    as_json = json.loads(moka("verify", f"{IMAGE}:{tag}", "--env", "test", "--json").stdout)
    assert as_json["ok"] and as_json["signature"]["verified"]
    assert [(a["kind"], a["signer"], a["predicate"]) for a in as_json["attestations"]] == [("scan", "test", SCAN)]
    assert moka("verify", f"{IMAGE}:{tag}", "--env", "dev").returncode != 0  # not in dev's registry


def test_nothing_leaves_loopback(signed_settings: Settings, image: ImageRef, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connection cosign opens while signing, attesting and verifying is to 127.0.0.1 (strace)."""
    strace = shutil.which("strace")
    if strace is None:
        unavailable("strace is not installed")
    real = run.require("cosign")
    shim = tmp_path / "tools" / "bin" / "cosign"
    shim.parent.mkdir(parents=True)
    shim.write_text(f'#!/bin/sh\nexec {strace} -f -qq -e trace=connect -o "{tmp_path}/trace.$$" {real} "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("MOKA_HOME", str(tmp_path))  # run.require finds tools in $MOKA_HOME/tools/bin first
    assert run.require("cosign") == str(shim)
    signing.sign(signed_settings, TEST, image)
    attestations.attest(signed_settings, TEST, image, "promotion", {"from": "test", "to": "dev", "run": RUN})
    assert signing.verify(signed_settings, TEST, image).ok
    traces = "".join(p.read_text() for p in tmp_path.glob("trace.*"))
    addresses = set(re.findall(r'inet_addr\("([^"]+)"\)', traces)) | set(re.findall(r'inet_pton\(AF_INET6, "([^"]+)"', traces))
    assert addresses == {"127.0.0.1"}, traces[-2000:]


def test_cosign_awskms_provider_reaches_the_local_kms(signed_settings: Settings) -> None:
    """The production key form (`awskms:///alias/...`) with our endpoint and role settings fetches the public key
    from moto's KMS. (Signing against moto is not tested: moto signs DIGEST messages as raw ones.)"""
    settings = signed_settings
    kms = ecr.client(repositories.aws_access(settings, TEST), "kms")
    key_id = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256",
                            Description=f"moka itest-sign {RUN}")["KeyMetadata"]["KeyId"]
    alias = f"alias/itest-sign-{RUN}"
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    try:
        ref = f"awskms:///{alias}"
        envs = dict(settings.environments)
        envs[TEST] = envs[TEST].model_copy(update={"signing_key": ref, "public_key": ref})
        kms_settings = settings.model_copy(update={"environments": envs})
        pem = cosign.public_key(ref, keys.options(kms_settings, TEST, signing=True))
        der = kms.get_public_key(KeyId=key_id)["PublicKey"]
        assert keys.fingerprint(pem) == keys.fingerprint(base64.b64encode(der).decode())
        assert keys.ensure_keys(kms_settings) == []
    finally:
        kms.delete_alias(AliasName=alias)
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
