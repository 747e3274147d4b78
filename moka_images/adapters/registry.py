"""OCI distribution API client: manifests, blobs, tags. The data plane of every registry, ECR included."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, Self

import requests

from moka_images import log
from moka_images.adapters.blob_store import BlobStore
from moka_images.adapters.retry import Policy, retry_after
from moka_images.errors import ServiceError
from moka_images.models import Digest, Platform

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))
_RETRY_STATUS = {429, 500, 502, 503, 504}
CHUNK = 4 * 1024 * 1024
POOL_SIZE = 32  # connections kept per registry: the copy workers and status' readers share one client
CACHED_BLOB_LIMIT = 1024 * 1024  # small blobs (configs, signature payloads, attestations) are kept once read
CACHE_ENTRIES = 4096


@dataclass(frozen=True)
class Manifest:
    """A manifest as stored: its exact bytes, media type and digest."""

    raw: bytes
    media_type: str
    digest: Digest

    @property
    def json(self) -> dict[str, Any]:
        """The parsed document."""
        return json.loads(self.raw)

    @property
    def is_index(self) -> bool:
        """Whether this is an image index (multi-platform)."""
        return self.media_type in INDEX_TYPES

    def platforms(self) -> dict[Platform, Digest]:
        """Per-platform manifest digests of an index (attestation and unknown entries are left out)."""
        out: dict[Platform, Digest] = {}
        for entry in self.json.get("manifests", []):
            plat = entry.get("platform") or {}
            if plat.get("os") == "linux" and plat.get("architecture") in ("amd64", "arm64"):
                out[Platform("linux", plat["architecture"])] = Digest(entry["digest"])
        return out

    def blobs(self) -> list[Digest]:
        """Config and layer digests of a single-platform manifest (or artifact)."""
        doc = self.json
        found = [doc["config"]["digest"]] if "config" in doc else []
        found += [layer["digest"] for layer in doc.get("layers", [])]
        return [Digest(d) for d in found]


def digest_of(data: bytes) -> Digest:
    """sha256 digest of bytes."""
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


def is_local(registry: str) -> bool:
    """Local registries speak plain HTTP on loopback."""
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    return host in ("127.0.0.1", "localhost", "[::1]")


class BlobStream(Protocol):
    """A blob being read, closed by leaving the `with` block."""

    @property
    def raw(self) -> Any:
        """A readable file object of the blob's bytes (urllib3's stream for the real client), read once."""

    def __enter__(self) -> Self: ...

    def __exit__(self, *args: object) -> None: ...


class Registry(Protocol):
    """What the stages and the copy engine ask of a registry: the OCI distribution API as this program uses it.

    `RegistryClient` is the real one; the unit tests run the stages against an in-memory one. What both keep:
    a manifest is stored as its exact bytes under their sha256 digest, and a tag names one of them;
    `head_manifest` answers None for what is absent where `get_manifest` raises; a blob or manifest pushed
    under a digest that is not its own is refused; a registry may refuse a manifest whose blobs or child manifests are not in the
    repository yet (distribution does), so writers go children first. Refusals and failures raise ServiceError.
    """

    @property
    def registry(self) -> str:
        """host[:port]: two clients with the same one reach the same storage (blobs can be mounted)."""

    def list_tags(self, repository: str) -> list[str]:
        """All tags of a repository (empty if the repository does not exist)."""

    def catalog(self) -> list[str]:
        """Repository names (local registries; ECR uses describe_repositories instead)."""

    def head_manifest(self, repository: str, reference: str) -> Digest | None:
        """Digest that a tag or digest points at, or None if absent."""

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """A manifest by tag or digest, as stored (ServiceError if absent)."""

    def find_manifest(self, repository: str, reference: str) -> Manifest | None:
        """A manifest by tag or digest, as stored; None if absent (one request where HEAD, then GET take two)."""

    def blob_exists(self, repository: str, digest: Digest) -> bool:
        """Whether a blob is already in a repository."""

    def open_blob(self, repository: str, digest: Digest) -> BlobStream:
        """A blob to stream; the caller closes it (ServiceError if absent)."""

    def get_blob(self, repository: str, digest: Digest) -> bytes:
        """A small blob's bytes, verified against its digest."""

    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        """Cross-repository mount within this registry; False when the caller must upload instead."""

    def push_blob(self, repository: str, data: bytes | BinaryIO, digest: Digest | None = None,
                  size: int | None = None) -> Digest:
        """Upload a blob (bytes, or a file object with its digest and size) unless it is already there."""

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> Digest:
        """Store a manifest under a tag or its digest; returns its digest."""


class RegistryClient:
    """One registry, one set of credentials; retries 429/5xx with backoff; handles Basic and Bearer auth.

    Implements `Registry` (structurally), plus `ping` and the bytes it uploaded. What it reads by digest
    (manifests, small blobs) never changes, so it is kept and not read again: one client serves a whole run.
    Given a `store`, small blobs are also kept on disk for later runs (by digest alone: the same bytes in any
    repository of any registry).
    """

    def __init__(self, registry: str, username: str | None = None, password: str | None = None,
                 *, retries: int = 5, timeout: float = 60.0, store: BlobStore | None = None,
                 renew: Callable[[str], tuple[str, str]] | None = None) -> None:
        self.registry = registry
        self.base = f"{'http' if is_local(registry) else 'https'}://{registry}"
        self._creds = (username, password or "") if username else None
        self._renew = renew  # given the refused password, new credentials (a token kept from an earlier run)
        self._renew_lock = threading.Lock()
        self._accepted: tuple[str, str] | None = None
        self._session = requests.Session()
        self._session.trust_env = False  # never route loopback traffic through a proxy
        pooled = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
        self._session.mount("http://", pooled)
        self._session.mount("https://", pooled)
        self._read = _ByDigest(CACHE_ENTRIES)
        self._store = store  # small blobs kept on disk from run to run
        self._bearer: dict[str, str] = {}
        self.retries, self.timeout = retries, timeout
        self.bytes_sent = 0

    # --- transport -----------------------------------------------------------------------------------
    def _request(self, method: str, url: str, *, scope: str = "", retry: bool = True,
                 **kw: Any) -> requests.Response:
        url = url if url.startswith("http") else self.base + url
        kw.setdefault("timeout", self.timeout)
        given = kw.pop("headers", None) or {}
        rewindable = _rewindable(kw)

        def send() -> _Sent:
            headers, used = dict(given), self._creds
            self._authorize(headers, scope)
            resp = self._session.request(method, url, headers=headers, **kw)
            return _Sent(resp, resp.status_code == 401 and (self._login(resp, scope) or self._renewed(used)))

        try:
            sent = self._policy(self.retries + 1 if retry else 1).call(
                send,
                retry_error=lambda exc: isinstance(exc, requests.ConnectionError) and rewindable,
                retry_result=lambda s: s.logged_in or (s.resp.status_code in _RETRY_STATUS and rewindable),
                # a challenge we just logged in for is resent at once, and uses up an attempt as any retry
                asked=lambda s: 0.0 if s.logged_in else _asked(s.resp))
        except requests.ConnectionError as exc:
            raise ServiceError(f"registry {self.registry} is not reachable: {exc.__class__.__name__}",
                               "is the stack up? `moka-images dev up`") from exc
        return sent.resp

    @staticmethod
    def _policy(attempts: int) -> Policy:
        """Waits from 0.25 s, doubling, at most 8 s, jittered (many copy workers share one registry)."""
        return Policy(attempts, first=0.25, cap=8.0, jitter=True)

    def _authorize(self, headers: dict[str, str], scope: str) -> None:
        token = self._bearer.get(scope) or self._bearer.get("")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif self._creds:
            pair = f"{self._creds[0]}:{self._creds[1]}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()

    def _login(self, resp: requests.Response, scope: str) -> bool:
        challenge = resp.headers.get("WWW-Authenticate", "")
        if not challenge.lower().startswith("bearer") or scope in self._bearer:
            return False
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        query = {"service": params.get("service", "")}
        if params.get("scope"):
            query["scope"] = params["scope"]
        token_resp = self._session.get(params["realm"], params=query, auth=self._creds, timeout=self.timeout)
        if token_resp.status_code != 200:
            return False
        body = token_resp.json()
        self._bearer[scope] = body.get("token") or body.get("access_token", "")
        return True

    def _renewed(self, used: tuple[str, str] | None) -> bool:
        """After the registry refused `used`: whether there are other credentials to send again with (renewed
        once per refused password, however many requests were refused with it at once)."""
        if self._renew is None or used is None:
            return False
        with self._renew_lock:
            if self._creds == used:
                renewed = self._renew(used[1])
                if renewed == used:
                    return False
                self._creds, self._bearer = renewed, {}
        return True

    def accepted_credentials(self) -> tuple[str, str]:
        """Credentials this registry has accepted in this run (asked once; refused ones are renewed first), to
        hand to tools that read the docker config."""
        if self._creds is None:
            raise ServiceError(f"{self.registry}: no credentials to log in with")
        if self._accepted != self._creds:
            self.ping()
            self._accepted = self._creds
        return self._accepted

    def _check(self, resp: requests.Response, what: str) -> None:
        if resp.status_code == 401:
            raise ServiceError(f"{self.registry}: not authorized to {what}",
                               "credentials come from the environment's ECR token; check the account and role")
        if resp.status_code == 403:
            raise ServiceError(f"{self.registry}: forbidden to {what}: {_explain(resp)}")
        if resp.status_code >= 400:
            raise ServiceError(f"{self.registry}: {what} failed with HTTP {resp.status_code}: {_explain(resp)}")

    # --- reads ---------------------------------------------------------------------------------------
    def ping(self) -> None:
        """Check the registry answers and accepts our credentials."""
        self._check(self._request("GET", "/v2/"), "log in")

    def list_tags(self, repository: str) -> list[str]:
        """All tags of a repository (empty if the repository does not exist)."""
        tags: list[str] = []
        url: str | None = f"/v2/{repository}/tags/list?n=1000"
        while url:
            resp = self._request("GET", url, scope=repository)
            if resp.status_code == 404:
                return []
            self._check(resp, f"list tags of {repository}")
            tags += resp.json().get("tags") or []
            url = _next_link(resp)
        return tags

    def catalog(self) -> list[str]:
        """Repository names (local registries; ECR uses describe_repositories instead)."""
        names: list[str] = []
        url: str | None = "/v2/_catalog?n=1000"
        while url:
            resp = self._request("GET", url)
            self._check(resp, "list repositories")
            names += resp.json().get("repositories") or []
            url = _next_link(resp)
        return names

    def head_manifest(self, repository: str, reference: str) -> Digest | None:
        """Digest that a tag or digest points at, or None if absent."""
        resp = self._request("HEAD", f"/v2/{repository}/manifests/{reference}", scope=repository,
                             headers={"Accept": ACCEPT})
        if resp.status_code == 404:
            return None
        self._check(resp, f"look up {repository}:{reference}")
        found = resp.headers.get("Docker-Content-Digest")
        return Digest(found) if found else self.get_manifest(repository, reference).digest

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """Fetch a manifest by tag or digest, verifying its digest when fetched by digest."""
        found = self._manifest(repository, reference, absent_ok=False)
        assert found is not None
        return found

    def find_manifest(self, repository: str, reference: str) -> Manifest | None:
        """Fetch a manifest by tag or digest as `get_manifest` does; None if absent."""
        return self._manifest(repository, reference, absent_ok=True)

    def _manifest(self, repository: str, reference: str, *, absent_ok: bool) -> Manifest | None:
        """A manifest from the cache or the registry; what has a digest is kept under it, whichever way it was
        asked for (a tag is asked every time: it may move)."""
        if (kept := self._read.get(repository, reference)) is not None:
            return Manifest(*kept)
        resp = self._request("GET", f"/v2/{repository}/manifests/{reference}", scope=repository,
                             headers={"Accept": ACCEPT})
        if absent_ok and resp.status_code == 404:
            return None
        self._check(resp, f"read manifest {repository}:{reference}")
        raw = resp.content
        digest = digest_of(raw)
        if reference.startswith("sha256:") and digest.value != reference:
            raise ServiceError(f"{self.registry}: manifest {repository}@{reference} does not match its digest")
        media = resp.headers.get("Content-Type", "").split(";")[0] or json.loads(raw).get("mediaType", "")
        self._read.put(repository, str(digest), (raw, media, digest))
        return Manifest(raw, media, digest)

    def blob_exists(self, repository: str, digest: Digest) -> bool:
        """Whether a blob is already in a repository. A registry that still cannot say after the retries (a 5xx:
        docker-registry answers 500 for a link file a full disk cut short) is taken as not holding it, so the
        blob is written again, which mends the link; a registry that is down fails that write with its own error."""
        resp = self._request("HEAD", f"/v2/{repository}/blobs/{digest}", scope=repository)
        if resp.status_code == 404:
            return False
        if resp.status_code >= 500:
            log.warn(f"{self.registry}: looking up blob {digest.short} in {repository} answered HTTP "
                     f"{resp.status_code}; writing it again")
            return False
        self._check(resp, f"look up blob {digest.short} in {repository}")
        return True

    def open_blob(self, repository: str, digest: Digest) -> requests.Response:
        """A streaming response for a blob; the caller closes it."""
        resp = self._request("GET", f"/v2/{repository}/blobs/{digest}", scope=repository, stream=True)
        self._check(resp, f"read blob {digest.short} from {repository}")
        return resp

    def get_blob(self, repository: str, digest: Digest) -> bytes:
        """A small blob's bytes, verified against its digest."""
        if (kept := self._read.get(repository, str(digest))) is not None:
            return kept
        if self._store is not None and (stored := self._store.get(digest)) is not None:
            self._read.put(repository, str(digest), stored)
            return stored
        with self.open_blob(repository, digest) as resp:
            data = resp.content
        if digest_of(data) != digest:
            raise ServiceError(f"{self.registry}: blob {digest.short} in {repository} does not match its digest")
        if len(data) <= CACHED_BLOB_LIMIT:
            self._read.put(repository, str(digest), data)
            if self._store is not None:
                self._store.put(digest, data)
        return data

    # --- writes --------------------------------------------------------------------------------------
    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        """Cross-repository mount; False when the registry wants an upload instead."""
        resp = self._request("POST", f"/v2/{repository}/blobs/uploads/?mount={digest}&from={from_repository}",
                             scope=repository)
        if resp.status_code == 201:
            return True
        if resp.status_code == 202:
            self._cancel(resp)
            return False
        self._check(resp, f"mount {digest.short} into {repository}")
        return False

    def push_blob(self, repository: str, data: bytes | BinaryIO, digest: Digest | None = None,
                  size: int | None = None) -> Digest:
        """Upload a blob (bytes, or a file object with its digest and size) unless it is already there."""
        if isinstance(data, bytes):
            digest, size = digest or digest_of(data), len(data)
        if digest is None or size is None:
            raise ValueError("a streamed blob needs its digest and size")
        if self.blob_exists(repository, digest):
            return digest
        # A failed PUT leaves its upload session unusable, so every attempt opens a new one; a stream is
        # replayed from where it started when it can seek, otherwise the caller retries the whole blob.
        origin = None if isinstance(data, bytes) else (data.tell() if data.seekable() else None)
        replayable = isinstance(data, bytes) or origin is not None

        def upload() -> requests.Response | ServiceError:
            if origin is not None and not isinstance(data, bytes):
                data.seek(origin)
            start = self._request("POST", f"/v2/{repository}/blobs/uploads/", scope=repository)
            self._check(start, f"start upload to {repository}")  # not retried here: _request did that
            location = _absolute(self.base, start.headers["Location"])
            sep = "&" if "?" in location else "?"
            body: Any = data if isinstance(data, bytes) else _Upload(data, size)
            try:
                return self._request("PUT", f"{location}{sep}digest={digest}", scope=repository, data=body,
                                     retry=False, headers={"Content-Type": "application/octet-stream",
                                                           "Content-Length": str(size)})
            except ServiceError as exc:  # the registry went away mid-upload: worth another session
                return exc

        done = self._policy(self.retries + 1 if replayable else 1).call(
            upload,
            retry_result=lambda r: isinstance(r, ServiceError) or r.status_code in (*_RETRY_STATUS, 404),
            asked=lambda r: None if isinstance(r, ServiceError) else _asked(r))
        if isinstance(done, ServiceError):
            raise done
        self._check(done, f"upload blob {digest.short} to {repository}")
        self.bytes_sent += size
        return digest

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> Digest:
        """Store a manifest under a tag or its digest; returns its digest."""
        resp = self._request("PUT", f"/v2/{repository}/manifests/{reference}", scope=repository, data=raw,
                             headers={"Content-Type": media_type})
        self._check(resp, f"write manifest {repository}:{reference}")
        return digest_of(raw)

    def _cancel(self, resp: requests.Response) -> None:
        location = resp.headers.get("Location")
        if location:
            self._session.delete(_absolute(self.base, location), timeout=self.timeout)


class _ByDigest:
    """What a client read by digest, per repository, the oldest dropped first past `limit` entries."""

    def __init__(self, limit: int) -> None:
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, repository: str, reference: str) -> Any:
        with self._lock:
            return self._items.get((repository, reference))

    def put(self, repository: str, reference: str, value: Any) -> None:
        with self._lock:
            self._items[(repository, reference)] = value
            while len(self._items) > self._limit:
                self._items.popitem(last=False)


def _explain(resp: requests.Response) -> str:
    """The registry's errors as `CODE: message (cause)`: the cause (e.g. a full disk) sits at the end of a long
    detail, or only as an errno, and must survive shortening."""
    try:
        errors = resp.json()["errors"]
        parts = [f"{e.get('code')}: {e.get('message')}" + (f" ({c})" if (c := _cause(e.get("detail"))) else "")
                 for e in errors]
    except (ValueError, KeyError, TypeError, AttributeError):
        return resp.text[:300]
    return "; ".join(parts)[:600]


def _cause(detail: Any) -> str:
    if isinstance(detail, str):
        return detail if len(detail) <= 200 else "…" + detail[-200:]
    if isinstance(detail, dict):  # distribution's storage errors nest an errno: {"Enclosed": {"Op": .., "Err": 28}}
        if isinstance(detail.get("Err"), int):
            return f"{detail.get('Op', 'I/O')}: {os.strerror(detail['Err'])}"
        nested = [c for v in detail.values() if isinstance(v, dict) and (c := _cause(v))]
        return nested[0] if nested else json.dumps(detail, separators=(",", ":"))[:200]
    return ""


@dataclass(frozen=True)
class _Sent:
    """One request's answer, and whether it was a challenge we just logged in for (then resent at once)."""

    resp: requests.Response
    logged_in: bool


def _asked(resp: requests.Response) -> float | None:
    return retry_after(resp.headers.get("Retry-After"))


def _rewindable(kw: dict[str, Any]) -> bool:
    return not isinstance(kw.get("data"), Iterator | _Upload)


class _Upload:
    """A streamed blob body of known size: sent with Content-Length (a bare generator would go chunked, which
    registries reject next to a Content-Length) and never replayed by a retry."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream, self.size = stream, size

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.stream.read(CHUNK):
            yield chunk


def _absolute(base: str, location: str) -> str:
    return location if location.startswith("http") else base + location


def _next_link(resp: requests.Response) -> str | None:
    link = resp.headers.get("Link")
    if not link:
        return None
    match = re.match(r"<([^>]+)>", link)
    return match.group(1) if match else None
