"""An in-memory registry implementing `moka_images.adapters.registry.Registry`, for unit tests of the flows.

It keeps what a distribution registry behind the registry gate (and ECR) keeps, and refuses what they refuse,
worded as `RegistryClient` words a registry's refusal (`<registry>: <what> failed with HTTP <n>: <CODE>: ...`,
a ServiceError), so a test can tell which rule said no:

- blobs by digest, per repository; a push is checked against its digest (DIGEST_INVALID) and size (SIZE_INVALID);
- manifests as their exact bytes under their digest, with their media type; tags point at them; a manifest put
  under a digest that is not its own is refused (DIGEST_INVALID), so is one whose `mediaType` is not the one it
  is sent as, or that is no manifest (MANIFEST_INVALID);
- a manifest whose config and layers, or an index whose child manifests, are not in the repository is refused
  (MANIFEST_BLOB_UNKNOWN), as distribution refuses them: writers go children first;
- an immutable tag (`plan.tags.tag_is_mutable`) that points at another digest is not overwritten (TAG_INVALID),
  as ECR and the local registry gate refuse it; the same digest again is accepted;
- a mount from another repository of the same fake registry links the blob and is counted; from anywhere else
  it answers False, as a registry that wants an upload instead;
- HEAD answers None for what is absent where GET raises (404 MANIFEST_UNKNOWN / BLOB_UNKNOWN).

Every write is logged in order (`writes`, and the shared `events` list if given), so a test can say what was
written and when: blobs before manifests, children before parents, tags last, signatures before tags.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Self

from moka_images.adapters.registry import CHUNK, INDEX_TYPES, MANIFEST_TYPES, Manifest, Registry, digest_of
from moka_images.errors import ServiceError
from moka_images.models import ALL_PLATFORMS, Digest, Platform, is_valid_tag
from moka_images.plan.graph import BuildTag, rolling_tags
from moka_images.plan.tags import IMMUTABLE_FILTERS, tag_is_mutable

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
COSIGN_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"
CREATED = "org.opencontainers.image.created"

# ("blob" | "mount" | "manifest" | "tag", registry, repository, reference, digest), in the order written.
Event = tuple[str, str, str, str, str]


@dataclass
class Repository:
    """One repository: blobs, manifests by digest, tags."""

    blobs: dict[Digest, bytes] = field(default_factory=dict)
    manifests: dict[Digest, Manifest] = field(default_factory=dict)
    tags: dict[str, Digest] = field(default_factory=dict)


class FakeBlobStream:
    """What `open_blob` hands out: a `with` block whose `raw` reads the blob once, as urllib3's stream does."""

    def __init__(self, data: bytes, owner: FakeRegistry) -> None:
        self.raw = io.BytesIO(data)
        self._owner = owner
        self.closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def close(self) -> None:
        """Give the stream back (counted: a caller that forgets leaks a connection on a real registry)."""
        if not self.closed:
            self.closed = True
            with self._owner._lock:
                self._owner.open_streams -= 1


class FakeRegistry:
    """One registry (one storage), thread-safe: the copy engine writes blobs from several threads."""

    def __init__(self, registry: str = "fake.registry.test", *,
                 immutable_filters: tuple[str, ...] | None = IMMUTABLE_FILTERS,
                 events: list[Event] | None = None) -> None:
        self.registry = registry
        self.immutable_filters = immutable_filters  # None: no tag rule (a bare distribution registry)
        self.repositories: dict[str, Repository] = {}
        self.writes: list[Event] = []
        self.events = events
        self.mounts = 0
        self.bytes_sent = 0
        self.open_streams = 0
        self._lock = threading.RLock()

    # --- refusals, worded as RegistryClient words them --------------------------------------------
    def _refuse(self, what: str, status: int, code: str, message: str) -> ServiceError:
        return ServiceError(f"{self.registry}: {what} failed with HTTP {status}: {code}: {message}")

    def _log(self, kind: str, repository: str, reference: str, digest: Digest) -> None:
        event = (kind, self.registry, repository, reference, str(digest))
        self.writes.append(event)
        if self.events is not None:
            self.events.append(event)

    def _find(self, repository: str, reference: str, what: str) -> Manifest | None:
        if reference.startswith("sha256:"):
            try:
                wanted = Digest(reference)
            except ValueError:
                raise self._refuse(what, 400, "DIGEST_INVALID", "provided digest did not match uploaded content") \
                    from None
        elif is_valid_tag(reference):
            wanted = None
        else:
            raise self._refuse(what, 400, "TAG_INVALID", "manifest tag did not match URI")
        with self._lock:
            repo = self.repositories.get(repository)
            if repo is None:
                return None
            digest = wanted or repo.tags.get(reference)
            return repo.manifests.get(digest) if digest else None

    # --- reads ---------------------------------------------------------------------------------------
    def list_tags(self, repository: str) -> list[str]:
        """All tags of a repository, sorted as distribution lists them (empty if there is no repository)."""
        with self._lock:
            repo = self.repositories.get(repository)
            return sorted(repo.tags) if repo else []

    def catalog(self) -> list[str]:
        """Repository names."""
        with self._lock:
            return sorted(self.repositories)

    def head_manifest(self, repository: str, reference: str) -> Digest | None:
        """Digest that a tag or digest points at, or None if absent."""
        found = self._find(repository, reference, f"look up {repository}:{reference}")
        return found.digest if found else None

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """A manifest as stored; ServiceError (404 MANIFEST_UNKNOWN) if absent."""
        what = f"read manifest {repository}:{reference}"
        found = self._find(repository, reference, what)
        if found is None:
            raise self._refuse(what, 404, "MANIFEST_UNKNOWN", "manifest unknown")
        return found

    def find_manifest(self, repository: str, reference: str) -> Manifest | None:
        """A manifest as stored; None if absent."""
        return self._find(repository, reference, f"read manifest {repository}:{reference}")

    def blob_exists(self, repository: str, digest: Digest) -> bool:
        """Whether a blob is in a repository."""
        with self._lock:
            repo = self.repositories.get(repository)
            return repo is not None and digest in repo.blobs

    def open_blob(self, repository: str, digest: Digest) -> FakeBlobStream:
        """A stream of the blob's bytes; ServiceError (404 BLOB_UNKNOWN) if absent."""
        with self._lock:
            repo = self.repositories.get(repository)
            if repo is None or digest not in repo.blobs:
                raise self._refuse(f"read blob {digest.short} from {repository}", 404, "BLOB_UNKNOWN",
                                   "blob unknown to registry")
            self.open_streams += 1
            return FakeBlobStream(repo.blobs[digest], self)

    def get_blob(self, repository: str, digest: Digest) -> bytes:
        """A small blob's bytes, verified against its digest."""
        with self.open_blob(repository, digest) as stream:
            data = stream.raw.read()
        if digest_of(data) != digest:
            raise ServiceError(f"{self.registry}: blob {digest.short} in {repository} does not match its digest")
        return data

    # --- writes --------------------------------------------------------------------------------------
    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        """Link a blob from another repository of this registry; False when it is not there to mount."""
        with self._lock:
            source = self.repositories.get(from_repository)
            if source is None or digest not in source.blobs:
                return False
            self.repositories.setdefault(repository, Repository()).blobs[digest] = source.blobs[digest]
            self.mounts += 1
            self._log("mount", repository, from_repository, digest)
            return True

    def push_blob(self, repository: str, data: bytes | BinaryIO, digest: Digest | None = None,
                  size: int | None = None) -> Digest:
        """Store a blob unless it is there; the bytes must be `size` long and hash to `digest`."""
        if isinstance(data, bytes):
            digest, size = digest or digest_of(data), len(data)
        if digest is None or size is None:
            raise ValueError("a streamed blob needs its digest and size")
        if self.blob_exists(repository, digest):
            return digest
        body = data if isinstance(data, bytes) else b"".join(iter(lambda: data.read(CHUNK), b""))
        what = f"upload blob {digest.short} to {repository}"
        if len(body) != size:
            raise self._refuse(what, 400, "SIZE_INVALID", f"provided length {size} did not match content length "
                                                          f"{len(body)}")
        if digest_of(body) != digest:
            raise self._refuse(what, 400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        with self._lock:
            self.repositories.setdefault(repository, Repository()).blobs[digest] = body
            self.bytes_sent += size
            self._log("blob", repository, str(digest), digest)
        return digest

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> Digest:
        """Store a manifest under a tag or its digest, once everything it names is in the repository."""
        what = f"write manifest {repository}:{reference}"
        digest = digest_of(raw)
        if reference.startswith("sha256:"):
            if reference != digest.value:
                raise self._refuse(what, 400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        elif not is_valid_tag(reference):
            raise self._refuse(what, 400, "TAG_INVALID", "manifest tag did not match URI")
        if media_type not in (*INDEX_TYPES, *MANIFEST_TYPES):
            raise self._refuse(what, 400, "MANIFEST_INVALID", f"unsupported manifest media type {media_type}")
        try:
            doc = json.loads(raw)
        except ValueError:
            raise self._refuse(what, 400, "MANIFEST_INVALID", "manifest invalid: not JSON") from None
        if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
            raise self._refuse(what, 400, "MANIFEST_INVALID", "manifest invalid: schemaVersion 2 expected")
        if doc.get("mediaType", media_type) != media_type:
            raise self._refuse(what, 400, "MANIFEST_INVALID",
                               f"mediaType {doc.get('mediaType')} in the manifest, sent as {media_type}")
        manifest = Manifest(raw, media_type, digest)
        with self._lock:
            repo = self.repositories.get(repository, Repository())
            if manifest.is_index:
                named = [Digest(entry["digest"]) for entry in doc.get("manifests", [])]
                missing = [d for d in named if d not in repo.manifests]
            else:
                missing = [d for d in manifest.blobs() if d not in repo.blobs]
            if missing:
                raise self._refuse(what, 400, "MANIFEST_BLOB_UNKNOWN",
                                   f"blob unknown to registry: {', '.join(d.short for d in missing)}")
            tagged = not reference.startswith("sha256:")
            current = repo.tags.get(reference) if tagged else None
            if (tagged and self.immutable_filters is not None and current not in (None, digest)
                    and not tag_is_mutable(reference, self.immutable_filters)):
                raise self._refuse(what, 400, "TAG_INVALID",
                                   f"ImageTagAlreadyExistsException: tag '{reference}' already exists in the "
                                   f"'{repository}' repository and cannot be overwritten because the "
                                   f"repository is immutable")
            self.repositories[repository] = repo
            if digest not in repo.manifests:
                repo.manifests[digest] = manifest
                self._log("manifest", repository, str(digest), digest)
            if tagged and current != digest:
                repo.tags[reference] = digest
                self._log("tag", repository, reference, digest)
        return digest

    # --- for tests -----------------------------------------------------------------------------------
    def tags(self, repository: str) -> dict[str, Digest]:
        """Every tag of a repository and where it points."""
        with self._lock:
            repo = self.repositories.get(repository)
            return dict(sorted(repo.tags.items())) if repo else {}

    def tag_writes(self, repository: str | None = None) -> list[tuple[str, str]]:
        """(tag, digest) of each tag write, in order."""
        return [(e[3], e[4]) for e in self.writes if e[0] == "tag" and repository in (None, e[2])]


def as_registry(fake: FakeRegistry) -> Registry:
    """The fake where a Registry is expected (mypy checks the fake against the protocol here)."""
    return fake


# --- images --------------------------------------------------------------------------------------------

def seed_digest(text: str) -> Digest:
    """A digest made from a word, for own keys and bases."""
    return Digest("sha256:" + hashlib.sha256(text.encode()).hexdigest())


def push_platform(registry: Registry, repository: str, platform: Platform, *, seed: str, docker: bool = False,
                  labels: dict[str, str] | None = None, tag: str | None = None, below: Sequence[bytes] = ()) -> Digest:
    """A single-platform image (a config and one small layer, on top of the layers `below`: a base's) pushed by
    digest, and under `tag` if given."""
    layers = [*below, f"layer of {seed} for {platform}".encode()]
    config = json.dumps({"architecture": platform.arch, "os": platform.os,
                         "config": {"Labels": dict(labels or {})},
                         "rootfs": {"type": "layers", "diff_ids": [str(digest_of(x)) for x in layers]}},
                        sort_keys=True).encode()
    for layer in layers:
        registry.push_blob(repository, layer)
    registry.push_blob(repository, config)
    media = DOCKER_MANIFEST if docker else OCI_MANIFEST
    raw = json.dumps({
        "schemaVersion": 2, "mediaType": media,
        "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG, "digest": str(digest_of(config)),
                   "size": len(config)},
        "layers": [{"mediaType": DOCKER_LAYER if docker else OCI_LAYER, "digest": str(digest_of(layer)),
                    "size": len(layer)} for layer in layers],
    }, indent=2).encode()
    digest = registry.put_manifest(repository, str(digest_of(raw)), raw, media)
    if tag:
        registry.put_manifest(repository, tag, raw, media)
    return digest


@dataclass(frozen=True)
class Pushed:
    """An image pushed as a build would leave it: index digest, build tag, platform digests, the index bytes."""

    repository: str
    digest: Digest
    build: BuildTag
    platforms: dict[Platform, Digest]
    created: str
    raw: bytes

    @property
    def version(self) -> str:
        """The build's version."""
        return self.build.version


def push_image(registry: Registry, repository: str, version: str, *, seed: str,
               created: str = "2025-01-01T00:00:00Z", platforms: Sequence[Platform] = ALL_PLATFORMS,
               tags: Sequence[str] | None = None, labels: dict[str, str] | None = None,
               below: Mapping[Platform, Sequence[bytes]] | None = None) -> Pushed:
    """A multi-platform image by digest, then its build tag and rolling tags (or `tags`), as in test; each
    platform's config carries `labels`, and its own layer sits on `below[platform]` (a base's layers)."""
    build = BuildTag.make(version, seed_digest(f"own {seed}").hex, seed_digest(f"base {seed}"))
    children = {p: push_platform(registry, repository, p, seed=f"{seed} {version}", labels=labels,
                                 below=(below or {}).get(p, ())) for p in platforms}
    entries = []
    for platform, child in children.items():
        size = len(registry.get_manifest(repository, str(child)).raw)
        entries.append({"mediaType": OCI_MANIFEST, "digest": str(child), "size": size,
                        "platform": {"architecture": platform.arch, "os": platform.os}})
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries,
                      "annotations": {CREATED: created}}).encode()
    digest = registry.put_manifest(repository, str(digest_of(raw)), raw, OCI_INDEX)
    for tag in tags if tags is not None else (str(build), *rolling_tags(version)):
        registry.put_manifest(repository, tag, raw, OCI_INDEX)
    return Pushed(repository, digest, build, children, created, raw)


def signature_tag(digest: Digest) -> str:
    """cosign's signature tag of a digest."""
    return f"sha256-{digest.hex}.sig"


def add_signature(registry: Registry, repository: str, digest: Digest, signer: str) -> Digest:
    """What `cosign sign` leaves: a layer appended to the `.sig` manifest of `digest` (made if absent).

    The layer is a simple-signing payload naming the digest, annotated with the signer in place of a signature.
    """
    tag = signature_tag(digest)
    payload = json.dumps({"critical": {"image": {"docker-manifest-digest": str(digest)}}}).encode()
    registry.push_blob(repository, payload)
    layer = {"mediaType": COSIGN_LAYER, "digest": str(digest_of(payload)), "size": len(payload),
             "annotations": {"dev.cosignproject.cosign/signature": f"signed-by-{signer}"}}
    layers: list[dict[str, Any]] = []
    if registry.head_manifest(repository, tag) is not None:
        layers = registry.get_manifest(repository, tag).json["layers"]
    layers = [*layers, layer]
    config = json.dumps({"architecture": "", "os": "", "created": "0001-01-01T00:00:00Z",
                         "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in layers]},
                         "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layers]},
                        separators=(",", ":")).encode()
    registry.push_blob(repository, config)
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": {"mediaType": OCI_CONFIG, "digest": str(digest_of(config)), "size": len(config)},
                      "layers": layers}, separators=(",", ":")).encode()
    return registry.put_manifest(repository, tag, raw, OCI_MANIFEST)


def signers(registry: Registry, repository: str, digest: Digest) -> list[str]:
    """Who signed `digest` there, in the order the signatures were added."""
    tag = signature_tag(digest)
    if registry.head_manifest(repository, tag) is None:
        return []
    return [layer["annotations"]["dev.cosignproject.cosign/signature"].removeprefix("signed-by-")
            for layer in registry.get_manifest(repository, tag).json["layers"]]


def layers_of(registry: FakeRegistry, repository: str, image: Pushed) -> dict[Platform, list[bytes]]:
    """Each platform's layers, bottom first, as bytes: what an image built on `image` would sit on."""
    return {p: [registry.get_blob(repository, Digest(x["digest"]))
                for x in registry.get_manifest(repository, str(d)).json["layers"]]
            for p, d in image.platforms.items()}
