"""The in-memory registry's own contract: it stores, answers and refuses as a registry does, and through the real
RegistryClient (over a wire stand-in that serves the fake's storage as the distribution API) every answer and
every refusal reads the same as from the fake directly."""

from __future__ import annotations

import io
import json
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from fakes import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    FakeRegistry,
    add_signature,
    as_registry,
    push_image,
    push_platform,
    signers,
)

from moka_images.adapters.blob_store import BlobStore
from moka_images.adapters.copy import TagSet, copy_image, set_tags
from moka_images.adapters.registry import Manifest, Registry, RegistryClient, digest_of
from moka_images.errors import ServiceError
from moka_images.models import ALL_PLATFORMS, Digest, Platform

REPO = "moka/spark-3.5"
AMD64, ARM64 = ALL_PLATFORMS


def manifest_of(config: bytes, *layers: bytes, media: str = OCI_MANIFEST) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": media,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": str(digest_of(config)), "size": len(config)},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                   "digest": str(digest_of(x)), "size": len(x)} for x in layers]}).encode()


def index_of(*children: tuple[Digest, int, Platform]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": str(d), "size": size,
         "platform": {"architecture": p.arch, "os": p.os}} for d, size, p in children]}).encode()


def test_the_fake_is_a_registry() -> None:
    fake = FakeRegistry()
    assert as_registry(fake) is fake  # mypy checks the fake against the Protocol in fakes.as_registry


# ---- storage and answers -------------------------------------------------------------------------------


def test_manifests_are_kept_as_their_exact_bytes_under_their_digest_and_tags_point_at_them() -> None:
    fake = FakeRegistry()
    image = push_image(fake, REPO, "1.0.1", seed="a")
    by_tag = fake.get_manifest(REPO, "latest")
    assert (by_tag.raw, by_tag.media_type, by_tag.digest) == (image.raw, OCI_INDEX, digest_of(image.raw))
    assert fake.get_manifest(REPO, str(image.digest)) == by_tag
    assert fake.head_manifest(REPO, str(image.build)) == image.digest
    assert fake.list_tags(REPO) == sorted([str(image.build), "1.0.1", "1.0", "latest"])
    assert fake.catalog() == [REPO]
    child = fake.get_manifest(REPO, str(image.platforms[AMD64]))
    assert child.media_type == OCI_MANIFEST and not child.is_index
    assert all(fake.blob_exists(REPO, d) for d in child.blobs())
    assert json.loads(fake.get_blob(REPO, child.blobs()[0]))["architecture"] == "amd64"


def test_what_is_absent_is_none_to_head_and_an_error_to_get() -> None:
    fake = FakeRegistry()
    missing = Digest("sha256:" + "0" * 64)
    assert fake.list_tags("nothing/here") == [] and fake.catalog() == []
    assert fake.head_manifest(REPO, "latest") is None
    assert fake.head_manifest(REPO, str(missing)) is None
    assert fake.blob_exists(REPO, missing) is False
    with pytest.raises(ServiceError, match=r"read manifest moka/spark-3.5:latest failed with HTTP 404: MANIFEST_UNKNOWN"):
        fake.get_manifest(REPO, "latest")
    with pytest.raises(ServiceError, match=r"HTTP 404: BLOB_UNKNOWN"):
        fake.open_blob(REPO, missing)


def test_a_blob_is_checked_against_its_digest_and_size() -> None:
    fake = FakeRegistry()
    data = b"layer bytes"
    with pytest.raises(ServiceError, match="HTTP 400: DIGEST_INVALID"):
        fake.push_blob(REPO, data, Digest("sha256:" + "1" * 64))
    with pytest.raises(ServiceError, match="HTTP 400: SIZE_INVALID"):
        fake.push_blob(REPO, io.BytesIO(data), digest_of(data), len(data) + 1)
    with pytest.raises(ValueError, match="needs its digest and size"):
        fake.push_blob(REPO, io.BytesIO(data))
    assert fake.catalog() == [] and fake.bytes_sent == 0
    assert fake.push_blob(REPO, io.BytesIO(data), digest_of(data), len(data)) == digest_of(data)
    assert fake.bytes_sent == len(data)

    class Unreadable(io.BytesIO):
        def read(self, *args: Any) -> bytes:
            raise AssertionError("a blob that is there is not uploaded again")

    assert fake.push_blob(REPO, Unreadable(), digest_of(data), len(data)) == digest_of(data)
    with fake.open_blob(REPO, digest_of(data)) as stream:
        assert fake.open_streams == 1
        assert stream.raw.read() == data
    assert fake.open_streams == 0


def test_a_manifest_is_refused_until_what_it_names_is_there() -> None:
    fake = FakeRegistry()
    config, layer = b'{"architecture":"amd64","os":"linux"}', b"layer"
    raw = manifest_of(config, layer)
    fake.push_blob(REPO, config)
    with pytest.raises(ServiceError, match=rf"HTTP 400: MANIFEST_BLOB_UNKNOWN: .*{digest_of(layer).short}"):
        fake.put_manifest(REPO, str(digest_of(raw)), raw, OCI_MANIFEST)
    index = index_of((digest_of(raw), len(raw), AMD64))
    with pytest.raises(ServiceError, match=rf"HTTP 400: MANIFEST_BLOB_UNKNOWN: .*{digest_of(raw).short}"):
        fake.put_manifest(REPO, "latest", index, OCI_INDEX)
    assert fake.list_tags(REPO) == [] and fake.head_manifest(REPO, str(digest_of(index))) is None
    fake.push_blob(REPO, layer)
    assert fake.put_manifest(REPO, str(digest_of(raw)), raw, OCI_MANIFEST) == digest_of(raw)
    assert fake.put_manifest(REPO, "latest", index, OCI_INDEX) == digest_of(index)
    assert [e[0] for e in fake.writes] == ["blob", "blob", "manifest", "manifest", "tag"]


def test_a_manifest_under_another_digest_or_media_type_is_refused() -> None:
    fake = FakeRegistry()
    image = push_image(fake, REPO, "1.0.1", seed="a", tags=())
    with pytest.raises(ServiceError, match="HTTP 400: DIGEST_INVALID"):
        fake.put_manifest(REPO, str(image.platforms[AMD64]), image.raw, OCI_INDEX)
    with pytest.raises(ServiceError, match="HTTP 400: MANIFEST_INVALID: mediaType"):
        fake.put_manifest(REPO, "latest", image.raw, DOCKER_MANIFEST)
    with pytest.raises(ServiceError, match="HTTP 400: MANIFEST_INVALID"):
        fake.put_manifest(REPO, "latest", b"not json", OCI_MANIFEST)
    assert fake.list_tags(REPO) == []


def test_immutable_tags_do_not_move_and_the_rest_do() -> None:
    fake = FakeRegistry()
    old = push_image(fake, REPO, "1.0.1", seed="a")
    new = push_image(fake, REPO, "1.0.1", seed="b", tags=())
    per_arch = f"{old.build}-amd64"
    fake.put_manifest(REPO, per_arch, fake.get_manifest(REPO, str(old.platforms[AMD64])).raw, OCI_MANIFEST)
    for tag in (str(old.build), per_arch):
        with pytest.raises(ServiceError, match=f"HTTP 400: TAG_INVALID: ImageTagAlreadyExistsException: tag '{tag}'"):
            fake.put_manifest(REPO, tag, new.raw, OCI_INDEX)
    assert fake.put_manifest(REPO, str(old.build), old.raw, OCI_INDEX) == old.digest  # the same digest again
    for tag in ("latest", "1.0", "1.0.1", f"sha256-{old.digest.hex}.sig"):
        fake.put_manifest(REPO, tag, new.raw, OCI_INDEX)
    assert fake.tags(REPO) == {str(old.build): old.digest, per_arch: old.platforms[AMD64], "1.0": new.digest,
                               "1.0.1": new.digest, "latest": new.digest, f"sha256-{old.digest.hex}.sig": new.digest}
    bare = FakeRegistry(immutable_filters=None)  # distribution without the gate lets them move
    push_image(bare, REPO, "1.0.1", seed="a")
    moved = push_image(bare, REPO, "1.0.1", seed="b", tags=(str(old.build),))
    assert bare.head_manifest(REPO, str(old.build)) == moved.digest


def test_a_mount_links_a_blob_of_another_repository_of_the_same_registry() -> None:
    fake = FakeRegistry()
    blob = fake.push_blob("moka/a", b"shared layer")
    assert fake.mount_blob("moka/b", blob, "moka/a") is True
    assert fake.mount_blob("moka/b", Digest("sha256:" + "2" * 64), "moka/a") is False
    assert fake.mount_blob("moka/c", blob, "moka/nothing") is False
    assert fake.blob_exists("moka/b", blob) and not fake.blob_exists("moka/c", blob)
    assert fake.mounts == 1 and fake.bytes_sent == len(b"shared layer")


# ---- the copy engine against the fake -------------------------------------------------------------------


def test_copy_image_streams_children_before_parents_and_moves_no_tag() -> None:
    src, dst = FakeRegistry("test.example"), FakeRegistry("dev.example")
    image = push_image(src, REPO, "1.0.1", seed="a")
    add_signature(src, REPO, image.digest, "test")
    stats = copy_image(src, REPO, dst, REPO, image.digest, workers=4)
    sig = f"sha256-{image.digest.hex}.sig"
    assert dst.tags(REPO) == {sig: src.head_manifest(REPO, sig)}  # cosign's tag only; no image tag
    assert dst.get_manifest(REPO, str(image.digest)).raw == image.raw
    assert (stats.blobs_copied, stats.manifests_written, stats.attachments) == (4 + 2, 3, [sig])
    assert stats.bytes_copied == dst.bytes_sent and src.open_streams == 0 and dst.mounts == 0
    # the image's blobs, its manifests (children, then the index), then the signature's blobs and manifest
    assert [e[0] for e in dst.writes] == ["blob"] * 4 + ["manifest"] * 3 + ["blob"] * 2 + ["manifest", "tag"]
    assert dst.writes[6][3] == str(image.digest)

    again = copy_image(src, REPO, dst, REPO, image.digest)
    assert not again.changed and again.manifests_present == 3 and again.blobs_present == 6


def test_copy_within_one_registry_mounts_and_a_resumed_copy_finishes() -> None:
    reg = FakeRegistry()
    image = push_image(reg, "moka/a", "1.0.1", seed="a")
    stats = copy_image(reg, "moka/a", reg, "moka/b", image.digest)
    assert (stats.blobs_mounted, stats.blobs_copied, reg.mounts) == (4, 0, 4)
    other = FakeRegistry("elsewhere")
    # a copy killed after the blobs and one platform manifest: running it again finishes it
    copy_image(reg, "moka/a", other, "moka/a", image.digest)
    half = FakeRegistry("half")
    for e in [e for e in other.writes if e[0] == "blob"]:
        half.push_blob("moka/a", other.get_blob("moka/a", Digest(e[4])))
    amd = other.get_manifest("moka/a", str(image.platforms[AMD64]))
    half.put_manifest("moka/a", str(amd.digest), amd.raw, amd.media_type)
    resumed = copy_image(reg, "moka/a", half, "moka/a", image.digest)
    assert (resumed.blobs_present, resumed.blobs_copied, resumed.manifests_present, resumed.manifests_written) \
        == (4, 0, 1, 2)
    assert half.get_manifest("moka/a", str(image.digest)).raw == image.raw


def test_copy_merges_a_signature_the_target_has_of_its_own() -> None:
    src, dst = FakeRegistry("test.example"), FakeRegistry("dev.example")
    image = push_image(src, REPO, "1.0.1", seed="a")
    add_signature(src, REPO, image.digest, "test")
    copy_image(src, REPO, dst, REPO, image.digest)
    add_signature(dst, REPO, image.digest, "dev")
    add_signature(src, REPO, image.digest, "test-again")
    copy_image(src, REPO, dst, REPO, image.digest)
    assert signers(dst, REPO, image.digest) == ["test", "dev", "test-again"]
    config = json.loads(dst.get_blob(REPO, Digest(dst.get_manifest(REPO, f"sha256-{image.digest.hex}.sig")
                                                         .json["config"]["digest"])))
    assert len(config["rootfs"]["diff_ids"]) == 3


def test_set_tags_moves_only_tags_that_are_where_the_plan_saw_them() -> None:
    reg = FakeRegistry()
    old = push_image(reg, REPO, "1.0.1", seed="a")
    new = push_image(reg, REPO, "1.0.2", seed="b", tags=())
    with pytest.raises(ServiceError, match=r"1.0 moved to .* while promoting .*tags moved so far: 1.0.2"):
        set_tags(reg, REPO, new.digest, [TagSet("1.0.2", None), TagSet("1.0", None), TagSet("latest", old.digest)])
    assert reg.tags(REPO)["1.0.2"] == new.digest and reg.tags(REPO)["latest"] == old.digest
    assert set_tags(reg, REPO, new.digest, [TagSet("1.0.2", None), TagSet("1.0", old.digest),
                                            TagSet("latest", old.digest)]) == ["1.0", "latest"]
    missing = Digest("sha256:" + "3" * 64)
    with pytest.raises(ServiceError, match="tags only follow a complete copy"):
        set_tags(reg, REPO, missing, [TagSet("latest", new.digest)])


# ---- the same scenario through RegistryClient ---------------------------------------------------------------

_REFUSAL = re.compile(r"failed with HTTP (\d+): ([A-Z_]+): (.*)$", re.DOTALL)


def _answer(status: int, body: bytes = b"", **headers: str) -> requests.Response:
    resp = requests.Response()
    resp.status_code, resp._content = status, body
    resp.headers.update(headers)
    return resp


class Wire:
    """A requests.Session stand-in serving a FakeRegistry's storage as the distribution API answers it: status,
    headers and the `{"errors": [...]}` body of each refusal, so RegistryClient reads it as it reads a registry."""

    def __init__(self, fake: FakeRegistry) -> None:
        self.fake = fake
        self.uploads: set[str] = set()

    def _refusal(self, exc: ServiceError) -> requests.Response:
        match = _REFUSAL.search(str(exc))
        assert match, str(exc)
        body = json.dumps({"errors": [{"code": match[2], "message": match[3]}]}).encode()
        return _answer(int(match[1]), body, **{"Content-Type": "application/json"})

    def request(self, method: str, url: str, headers: dict[str, str] | None = None, **kw: Any) -> requests.Response:
        parts, headers = urlsplit(url), headers or {}
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        try:
            return self._serve(method, path, query, headers, kw.get("data"))
        except ServiceError as exc:
            return self._refusal(exc)

    def _serve(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               data: Any) -> requests.Response:
        fake = self.fake
        if path == "/v2/_catalog":
            return _answer(200, json.dumps({"repositories": fake.catalog()}).encode())
        if m := re.fullmatch(r"/v2/(.+)/tags/list", path):
            if m[1] not in fake.repositories:
                return _answer(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}')
            return _answer(200, json.dumps({"name": m[1], "tags": fake.list_tags(m[1])}).encode())
        if m := re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", path):
            repo, ref = m[1], m[2]
            if method == "PUT":
                digest = fake.put_manifest(repo, ref, data, headers["Content-Type"])
                return _answer(201, **{"Docker-Content-Digest": str(digest)})
            if fake.head_manifest(repo, ref) is None:
                return _answer(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
            found = fake.get_manifest(repo, ref)
            return _answer(200, found.raw if method == "GET" else b"",
                           **{"Docker-Content-Digest": str(found.digest), "Content-Type": found.media_type})
        if m := re.fullmatch(r"/v2/(.+)/blobs/uploads/([^/]*)", path):
            repo, session = m[1], m[2]
            if method == "POST" and "mount" in query and fake.mount_blob(repo, Digest(query["mount"]), query["from"]):
                return _answer(201)
            if method == "POST":
                session = uuid.uuid4().hex
                self.uploads.add(session)
                return _answer(202, Location=f"/v2/{repo}/blobs/uploads/{session}")
            assert method == "PUT" and session in self.uploads
            self.uploads.discard(session)
            body = data if isinstance(data, bytes) else b"".join(data)
            fake.push_blob(repo, io.BytesIO(body), Digest(query["digest"]), int(headers["Content-Length"]))
            return _answer(201)
        if m := re.fullmatch(r"/v2/(.+)/blobs/(sha256:[0-9a-f]{64})", path):
            if not fake.blob_exists(m[1], Digest(m[2])):
                return _answer(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}')
            resp = _answer(200)
            if method == "GET":
                resp._content = False  # type: ignore[assignment]  # streamed from raw, as with stream=True
                resp.raw = io.BytesIO(fake.get_blob(m[1], Digest(m[2])))
            return resp
        raise AssertionError(f"the wire stand-in does not serve {method} {path}")

    def delete(self, url: str, **kw: Any) -> requests.Response:
        self.uploads.discard(urlsplit(url).path.rsplit("/", 1)[-1])
        return _answer(204)


def over_the_wire(fake: FakeRegistry, store: BlobStore | None = None) -> RegistryClient:
    client = RegistryClient(fake.registry, retries=0, store=store)
    client._session = Wire(fake)  # type: ignore[assignment]
    return client


def scenario(reg: Registry) -> list[object]:
    """Every answer and refusal of one session of pushes, reads, tag moves and mounts, as plain values."""
    out: list[object] = []

    def step(call: Any, *args: Any) -> None:
        try:
            value = call(*args)
        except ServiceError as exc:
            value = ("refused", str(exc))
        out.append((value.raw, value.media_type, value.digest) if isinstance(value, Manifest) else value)

    config, layer = b'{"architecture":"arm64","os":"linux"}', b"a layer"
    raw = manifest_of(config, layer)
    index = index_of((digest_of(raw), len(raw), ARM64))
    step(reg.list_tags, REPO)
    step(reg.head_manifest, REPO, "latest")
    step(reg.get_manifest, REPO, "latest")
    step(reg.find_manifest, REPO, "latest")
    step(reg.blob_exists, REPO, digest_of(layer))
    step(reg.push_blob, REPO, layer, Digest("sha256:" + "4" * 64))
    step(reg.push_blob, REPO, io.BytesIO(layer), digest_of(layer), len(layer) + 2)
    step(reg.push_blob, REPO, config)
    step(reg.put_manifest, REPO, str(digest_of(raw)), raw, OCI_MANIFEST)
    step(reg.push_blob, REPO, io.BytesIO(layer), digest_of(layer), len(layer))
    step(reg.put_manifest, REPO, str(digest_of(index)), raw, OCI_MANIFEST)
    step(reg.put_manifest, REPO, "1.0.1-aaaaaaaaaa-bbbbbbbbbb", index, OCI_INDEX)
    step(reg.put_manifest, REPO, str(digest_of(raw)), raw, OCI_MANIFEST)
    step(reg.put_manifest, REPO, "1.0.1-aaaaaaaaaa-bbbbbbbbbb", index, OCI_INDEX)
    step(reg.put_manifest, REPO, "1.0.1-aaaaaaaaaa-bbbbbbbbbb", raw, OCI_MANIFEST)
    step(reg.put_manifest, REPO, "latest", raw, OCI_MANIFEST)
    step(reg.put_manifest, REPO, "latest", index, OCI_INDEX)
    step(reg.head_manifest, REPO, "latest")
    step(reg.get_manifest, REPO, str(digest_of(index)))
    step(reg.find_manifest, REPO, "latest")
    step(reg.get_blob, REPO, digest_of(config))
    step(reg.mount_blob, "moka/other", digest_of(layer), REPO)
    step(reg.mount_blob, "moka/other", digest_of(b"nowhere"), REPO)
    step(reg.blob_exists, "moka/other", digest_of(layer))
    step(reg.list_tags, REPO)
    step(reg.catalog)
    return out


def test_the_same_scenario_answers_the_same_through_registry_client() -> None:
    direct, served = FakeRegistry(), FakeRegistry()
    through_client = scenario(over_the_wire(served))
    assert scenario(direct) == through_client
    refusals = [str(v[1]) for v in through_client if isinstance(v, tuple) and v[0] == "refused"]
    assert [re.sub(r".* failed with (HTTP \d+: [A-Z_]+).*", r"\1", r, flags=re.DOTALL) for r in refusals] == [
        "HTTP 404: MANIFEST_UNKNOWN", "HTTP 400: DIGEST_INVALID", "HTTP 400: SIZE_INVALID",
        "HTTP 400: MANIFEST_BLOB_UNKNOWN", "HTTP 400: DIGEST_INVALID", "HTTP 400: MANIFEST_BLOB_UNKNOWN",
        "HTTP 400: TAG_INVALID"]
    assert direct.tags(REPO) == served.tags(REPO) and direct.writes == served.writes


def test_copy_through_registry_client_lands_the_same_bytes_as_through_the_fake() -> None:
    src, dst, src2, dst2 = (FakeRegistry(n) for n in ("test.example", "dev.example", "test.example", "dev.example"))
    for reg in (src, src2):
        image = push_image(reg, REPO, "1.0.1", seed="a")
        push_platform(reg, REPO, AMD64, seed="docker", docker=True, tag="odd")
        add_signature(reg, REPO, image.digest, "test")
    direct = copy_image(src, REPO, dst, REPO, image.digest, workers=1)
    wired = copy_image(over_the_wire(src2), REPO, over_the_wire(dst2), REPO, image.digest, workers=1)
    assert (direct.blobs_copied, direct.bytes_copied, direct.manifests_written, direct.attachments) \
        == (wired.blobs_copied, wired.bytes_copied, wired.manifests_written, wired.attachments)
    assert dst.tags(REPO) == dst2.tags(REPO)
    assert {d: m.raw for d, m in dst.repositories[REPO].manifests.items()} \
        == {d: m.raw for d, m in dst2.repositories[REPO].manifests.items()}
    assert dst.repositories[REPO].blobs == dst2.repositories[REPO].blobs


def counted(client: RegistryClient) -> tuple[RegistryClient, list[str]]:
    """The client, and the list its requests (`METHOD /path`) are written to as it sends them."""
    asked: list[str] = []
    serve = client._session.request  # type: ignore[attr-defined]
    client._session.request = lambda method, url, **kw: asked.append(f"{method} {urlsplit(url).path}") or serve(  # type: ignore[method-assign]
        method, url, **kw)
    return client, asked


def test_the_real_client_reads_what_has_a_digest_once_and_tags_every_time() -> None:
    fake = FakeRegistry()
    pushed = push_image(fake, REPO, "1.0.0", seed="cached")
    client, asked = counted(over_the_wire(fake))
    index = client.get_manifest(REPO, str(pushed.digest))
    assert client.get_manifest(REPO, str(pushed.digest)) == index
    config = Digest(client.get_manifest(REPO, str(next(iter(index.platforms().values())))).json["config"]["digest"])
    assert client.get_blob(REPO, config) == client.get_blob(REPO, config)
    client.get_manifest(REPO, "latest")
    assert client.find_manifest(REPO, "latest") == index and client.find_manifest(REPO, "nothing") is None
    assert sorted(asked) == sorted([f"GET /v2/{REPO}/manifests/{pushed.digest}",
                                    f"GET /v2/{REPO}/manifests/{next(iter(index.platforms().values()))}",
                                    f"GET /v2/{REPO}/blobs/{config}", f"GET /v2/{REPO}/manifests/nothing",
                                    f"GET /v2/{REPO}/manifests/latest", f"GET /v2/{REPO}/manifests/latest"])
    # what a tag gave is kept under its digest: reading that digest next asks nothing
    fresh, seen = counted(over_the_wire(fake))
    by_tag = fresh.find_manifest(REPO, "latest")
    assert by_tag is not None and fresh.get_manifest(REPO, str(by_tag.digest)) == by_tag
    assert seen == [f"GET /v2/{REPO}/manifests/latest"]


def test_a_client_with_a_store_reads_a_small_blob_once_across_runs(tmp_path: Path) -> None:
    fake = FakeRegistry()
    pushed = push_image(fake, REPO, "1.0.0", seed="stored")
    child = next(iter(pushed.platforms.values()))
    config = Digest(fake.get_manifest(REPO, str(child)).json["config"]["digest"])
    first, asked = counted(over_the_wire(fake, BlobStore(tmp_path)))
    data = first.get_blob(REPO, config)
    assert asked == [f"GET /v2/{REPO}/blobs/{config}"]
    later, asked_later = counted(over_the_wire(fake, BlobStore(tmp_path)))  # the next run, the same store
    assert later.get_blob(REPO, config) == data and asked_later == []
