"""Small real images for the promotion tests, pushed straight through the registry API (no docker build).

Each platform manifest holds a Debian-looking layer (os-release, a dpkg status trivy can read, a file unique to
the image) plus optional layers of random bytes, so copies have real weight. The index carries the creation
time that promotion uses to order rebuilds of one version. Tags follow the build: the build tag and, in
test, the rolling tags.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from moka_images.adapters import cosign
from moka_images.adapters.registry import RegistryClient, digest_of
from moka_images.config.settings import Settings
from moka_images.models import ALL_PLATFORMS, Digest, Environment, ImageRef, Platform
from moka_images.plan.graph import BuildTag, rolling_tags
from moka_images.stages import keys
from moka_images.stages.verify import attestations, signing
from moka_images.stages.verify.attestations import AttestationKind

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
CLEAN_DPKG = "Package: base-files\nStatus: install ok installed\nArchitecture: {arch}\nVersion: 12.4+deb12u10\n" \
             "Description: base\n\n"



def suite_settings(stack: Settings, prefix: str) -> Settings:
    """The local profile with a suite's own repository prefix, and every environment's keys present."""
    keys.ensure_keys(stack)
    return stack.model_copy(update={"repository_prefix": prefix})

@dataclass(frozen=True)
class Pushed:
    """A pushed image: its index digest, build tag, per-platform digests and blobs."""

    repository: str
    digest: Digest
    build: BuildTag
    platforms: dict[Platform, Digest]
    blobs: tuple[Digest, ...]
    created: str

    @property
    def version(self) -> str:
        """The build's version."""
        return self.build.version


def tar_layer(files: dict[str, bytes]) -> bytes:
    """An uncompressed, reproducible tar of `files`."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def vulnerable_jar() -> bytes:
    """A JAR that trivy reads as com.example.moka:moka-test-lib 1.0.0: HIGH with a fix in the local DB."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        jar.writestr("META-INF/maven/com.example.moka/moka-test-lib/pom.properties",
                     "groupId=com.example.moka\nartifactId=moka-test-lib\nversion=1.0.0\n")
        jar.writestr("com/example/moka/Lib.class", b"\xca\xfe\xba\xbe")
    return out.getvalue()


def push_image(client: RegistryClient, repository: str, version: str, *, seed: str, big_layers: int = 0,
               layer_mb: int = 1, extra: dict[str, bytes] | None = None, created: str | None = None,
               platforms: tuple[Platform, ...] = ALL_PLATFORMS, tags: tuple[str, ...] | None = None,
               below: Mapping[Platform, Sequence[bytes]] | None = None, labels: dict[str, str] | None = None) -> Pushed:
    """Push a multi-platform image and tag it like a build in test (build tag, then rolling tags); each platform's
    layers sit on `below[platform]` (a base's layers, pushed too) and its config carries `labels` as well."""
    created = created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    own = hashlib.sha256(f"own-{seed}".encode()).hexdigest()
    build = BuildTag.make(version, own, Digest("sha256:" + hashlib.sha256(f"base-{seed}".encode()).hexdigest()))
    entries, per_platform, blobs = [], {}, []
    for platform in platforms:
        files = {"etc/os-release": b'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n',
                 "etc/debian_version": b"12.10\n",
                 "var/lib/dpkg/status": CLEAN_DPKG.format(arch=platform.arch).encode(),
                 "etc/moka-itest": f"{seed} {platform}\n".encode(), **(extra or {})}
        layers = [*(below or {}).get(platform, ()), tar_layer(files)] + [
            tar_layer({f"data/{i}.bin": os.urandom(layer_mb * 1024 * 1024)}) for i in range(big_layers)]
        for layer in layers:
            blobs.append(client.push_blob(repository, layer))
        config = json.dumps({"architecture": platform.arch, "os": platform.os, "created": created,
                             "config": {"Labels": {"dev.moka-images.build-tag": str(build), **(labels or {})}},
                             "rootfs": {"type": "layers", "diff_ids": [str(digest_of(x)) for x in layers]},
                             "history": [{"created": created} for _ in layers]}).encode()
        blobs.append(client.push_blob(repository, config))
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": str(digest_of(config)), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": str(digest_of(x)), "size": len(x)} for x in layers],
        }).encode()
        digest = client.put_manifest(repository, str(digest_of(manifest)), manifest, OCI_MANIFEST)
        per_platform[platform] = digest
        entries.append({"mediaType": OCI_MANIFEST, "digest": str(digest), "size": len(manifest),
                        "platform": {"architecture": platform.arch, "os": platform.os}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries,
                        "annotations": {"org.opencontainers.image.created": created}}).encode()
    digest = client.put_manifest(repository, str(digest_of(index)), index, OCI_INDEX)
    for tag in tags if tags is not None else (str(build), *rolling_tags(version)):
        client.put_manifest(repository, tag, index, OCI_INDEX)
    return Pushed(repository, digest, build, per_platform, tuple(dict.fromkeys(blobs)), created)


def smoke_predicate(image: Pushed) -> dict:
    """A passing smoke result for every platform of `image` (these images hold no Spark to run)."""
    return {"image": {"name": image.repository, "digest": str(image.digest)}, "passed": True,
            "backend": "itest", "failures": [], "mismatches": [],
            "platforms": [{"platform": str(p), "digest": str(d), "passed": True, "jobs": []}
                          for p, d in sorted(image.platforms.items())]}


def ready_in_test(settings: Settings, image: Pushed, *, sign: bool = True, smoke: bool = True,
                  key_env: Environment = Environment.TEST) -> ImageRef:
    """Sign `image` in test (with `key_env`'s key) and attest a passing smoke result, as the pipeline would."""
    ref = ImageRef(settings.env(Environment.TEST).registry, image.repository, digest=image.digest)
    if sign and key_env is Environment.TEST:
        signing.sign(settings, Environment.TEST, ref)
    elif sign:
        cosign.sign_all([ref], settings.env(key_env).signing_key,
                    keys.options(settings, key_env, registry_env=Environment.TEST, signing=True))
    if smoke:
        attestations.attest(settings, Environment.TEST, ref, AttestationKind.SMOKE, smoke_predicate(image))
    return ref


def snapshot(client: RegistryClient, repository: str) -> dict[str, Digest | None]:
    """Every tag of a repository (cosign's included) and where it points: to show nothing changed."""
    return {t: client.head_manifest(repository, t) for t in sorted(client.list_tags(repository))}
