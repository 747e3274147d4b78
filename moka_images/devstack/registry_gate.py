"""The registry gate: a streaming reverse proxy that makes a CNCF distribution registry behave like ECR.

distribution has no tag immutability. The gate sits on the registry's address, forwards everything to the
real registry on a backend port, and refuses what an ECR repository made by `adapters.ecr` refuses: a manifest
PUT under an immutable tag (`plan.tags.tag_is_mutable`) that already points at another digest gets ECR's
400 TAG_INVALID; the same digest again is accepted. The check and the PUT hold a lock per repository and tag,
so two racing pushes end with one digest per tag, as on ECR.

Bodies stream both ways in 1 MiB pieces (blobs are hundreds of MB; nothing is buffered whole but a manifest),
client and backend connections are kept alive, and chunked request bodies (docker's blob PATCH) are re-framed.

Faults for the fault tests come from a small JSON file (`Faults`), re-read whenever it changes, so a test can
turn them on and off on a running gate: a share of requests answered 500 or 429 (with Retry-After), drawn from
a seeded generator, and a push that dies after N bytes (the connection is cut once, or the gate process exits
like a crashed registry). No file, no faults.

Run: python -m moka_images.devstack.registry_gate --listen 127.0.0.1:15001 --backend 127.0.0.1:16001
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import re
import select
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

from moka_images import log
from moka_images.adapters.registry import ACCEPT
from moka_images.plan.tags import tag_is_mutable

CHUNK = 1024 * 1024
MAX_MANIFEST = 4 * 1024 * 1024  # ECR's and distribution's manifest size limit
BACKEND_TIMEOUT = 600.0
_MANIFEST_RE = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "expect", "content-length"}
_LOCK_STRIPES = 64


@dataclass(frozen=True)
class Faults:
    """What the gate breaks on purpose; rates are shares of requests whose `METHOD path` matches `match`."""

    error_rate: float = 0.0  # answered 500
    throttle_rate: float = 0.0  # answered 429 with Retry-After
    retry_after: int = 1
    die_after_bytes: int | None = None  # once this many request-body bytes went through, die mid-request
    die: str = "drop"  # "drop": cut that connection (once); "exit": the gate process exits
    match: str = ""  # regex searched in "METHOD /path"; empty: every request
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.error_rate <= 1 and 0 <= self.throttle_rate <= 1 - self.error_rate):
            raise ValueError("error_rate and throttle_rate are shares between 0 and 1, together at most 1")
        if self.die not in ("drop", "exit"):
            raise ValueError(f"die must be 'drop' or 'exit', not {self.die!r}")
        re.compile(self.match)

    @classmethod
    def load(cls, path: Path) -> Faults:
        """Faults from a JSON file; none if there is no file."""
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return cls()

    def write(self, path: Path) -> None:
        """Write atomically, so a running gate never reads half a file."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)


class _FaultState:
    """The current faults, their random stream and the upload byte count; reloaded when the file changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._reset(Faults())
        self.refresh()

    def _reset(self, faults: Faults) -> None:
        self.faults, self._rng, self._bytes, self._died = faults, random.Random(faults.seed), 0, False
        self._match = re.compile(faults.match)

    def refresh(self) -> None:
        """Reload the file if it changed since the last look (one stat a request)."""
        if self.path is None:
            return
        try:
            st = self.path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return
        with self._lock:
            try:
                faults = Faults.load(self.path)
            except (ValueError, TypeError, re.error) as exc:
                log.warn(f"gate: ignoring bad fault file {self.path}: {exc}")
                faults = Faults()
            self._stamp = stamp
            self._reset(faults)
            log.info(f"gate: faults now {asdict(faults)}")

    def status(self, method: str, path: str) -> int | None:
        """An error status to answer instead of forwarding, or None."""
        f = self.faults
        if not (f.error_rate or f.throttle_rate) or not self._match.search(f"{method} {path}"):
            return None
        with self._lock:
            roll = self._rng.random()
        if roll < f.error_rate:
            return 500
        return 429 if roll < f.error_rate + f.throttle_rate else None

    def sent(self, n: int) -> bool:
        """Count request-body bytes; True exactly once, when the push should die."""
        limit = self.faults.die_after_bytes
        if limit is None:
            return False
        with self._lock:
            self._bytes += n
            if self._died or self._bytes < limit:
                return False
            self._died = True
            return True


class _Died(Exception):
    """The push dies here, on purpose."""


class _TooLarge(Exception):
    """A manifest beyond the size any registry takes."""


class GateServer(ThreadingHTTPServer):
    """One gate: where to forward, the faults, and the locks that serialize a tag's check and PUT."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, listen: tuple[str, int], backend: tuple[str, int], faults: Path | None) -> None:
        super().__init__(listen, _Handler)
        self.backend = backend
        self.faults = _FaultState(faults)
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]

    def tag_lock(self, name: str, tag: str) -> threading.Lock:
        """The lock for one repository's tag."""
        return self._locks[hash((name, tag)) % _LOCK_STRIPES]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 600
    # Headers and body go out as two writes; with Nagle's algorithm the body then waits for the client's delayed
    # ACK of the headers (40 ms on Linux): every small GET took 50 ms through the gate and 9 ms without it.
    disable_nagle_algorithm = True
    server: GateServer
    _conn: http.client.HTTPConnection | None = None
    _answered = False  # whether a status line went out for the current request

    def log_message(self, format: str, *args: object) -> None:
        """No access log: a line a request would cost more than the proxying."""

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def finish(self) -> None:
        super().finish()
        if self._conn is not None:
            self._conn.close()

    # --- one request ---------------------------------------------------------------------------------
    def _handle(self) -> None:
        self._answered = False
        faults = self.server.faults
        faults.refresh()
        try:
            status = faults.status(self.command, self.path)
            if status is not None:
                for _ in self._body():
                    pass
                self._fault(status)
                return
            match = _MANIFEST_RE.match(urlsplit(self.path).path)
            if self.command == "PUT" and match and not _unchecked(match["ref"]):
                self._put_immutable(match["name"], match["ref"])
            else:
                self._forward(self._body())
        except _TooLarge:
            self.close_connection = True  # the rest of the body is unread
            self._reply(400, {"errors": [{"code": "MANIFEST_INVALID",
                                          "message": f"manifest larger than {MAX_MANIFEST} bytes"}]})
        except _Died:
            f = faults.faults
            log.info(f"gate: fault: push dies after {f.die_after_bytes} bytes ({f.die})")
            if faults.faults.die == "exit":
                os._exit(3)
            self._drop()
        except (ConnectionError, TimeoutError, http.client.HTTPException) as exc:
            log.warn(f"gate: {self.command} {self.path}: {exc.__class__.__name__}: {exc}")
            if self._answered:
                self._drop()
                return
            self.close_connection = True
            self._reply(502, {"errors": [{"code": "UNAVAILABLE", "message": (
                f"registry behind the gate ({':'.join(map(str, self.server.backend))}) failed: {exc}")}]})

    def _put_immutable(self, name: str, tag: str) -> None:
        """ECR's rule: an immutable tag may be written again only with the digest it already has."""
        body = b"".join(self._body(limit=MAX_MANIFEST))
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        with self.server.tag_lock(name, tag):
            current = self._current_digest(name, tag)
            if current is not None and current != digest:
                self._reply(400, {"errors": [{"code": "TAG_INVALID", "message": (
                    f"ImageTagAlreadyExistsException: tag '{tag}' already exists in the '{name}' repository "
                    f"and cannot be overwritten because the repository is immutable"),
                    "detail": {"tag": tag, "current": current, "pushed": digest}}]})
                return
            self._forward(iter((body,)), length=len(body))

    def _current_digest(self, name: str, tag: str) -> str | None:
        """What the tag points at now, asked with the client's credentials (None: absent or not visible)."""
        headers = {"Accept": ACCEPT, "Host": self.headers.get("Host", "")}
        if self.headers.get("Authorization"):
            headers["Authorization"] = self.headers["Authorization"]
        conn = self._backend()
        conn.request("HEAD", f"/v2/{name}/manifests/{tag}", headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("Docker-Content-Digest") if resp.status == 200 else None

    # --- bodies --------------------------------------------------------------------------------------
    def _body(self, limit: int | None = None) -> Iterator[bytes]:
        """The request body in pieces, de-chunked; counted against the die-after-bytes fault."""
        faults = self.server.faults
        pieces = self._chunked() if "chunked" in self.headers.get("Transfer-Encoding", "").lower() \
            else self._sized(int(self.headers.get("Content-Length") or 0))
        total = 0
        for piece in pieces:
            total += len(piece)
            if limit is not None and total > limit:
                raise _TooLarge
            if faults.sent(len(piece)):
                raise _Died
            yield piece

    def _sized(self, remaining: int) -> Iterator[bytes]:
        while remaining > 0:
            piece = self.rfile.read(min(CHUNK, remaining))
            if not piece:
                raise ConnectionError("client closed the connection mid-body")
            remaining -= len(piece)
            yield piece

    def _chunked(self) -> Iterator[bytes]:
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise ConnectionError("client closed the connection mid-body")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers: dropped
                return
            yield from self._sized(size)
            self.rfile.readline(16)

    # --- backend -------------------------------------------------------------------------------------
    def _backend(self) -> http.client.HTTPConnection:
        """This client connection's backend connection, reopened if the backend closed it while idle."""
        conn = self._conn
        if conn is not None and conn.sock is not None and select.select([conn.sock], [], [], 0)[0]:
            conn.close()  # readable while idle: the backend hung up
        if conn is None:
            conn = self._conn = http.client.HTTPConnection(*self.server.backend, timeout=BACKEND_TIMEOUT)
        if conn.sock is None:  # the same two writes towards the registry: no Nagle there either
            conn.connect()
            cast(socket.socket, conn.sock).setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _forward(self, body: Iterator[bytes], length: int | None = None) -> None:
        """Send the request on to the backend, streaming `body`, and stream the answer back."""
        conn = self._backend()
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for key, value in self.headers.items():
            if key.lower() not in _HOP:
                conn.putheader(key, value)
        chunked = length is None and "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        if length is None and self.headers.get("Content-Length") is not None:
            length = int(self.headers["Content-Length"])
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        elif length is not None:
            conn.putheader("Content-Length", str(length))
        conn.endheaders()
        try:
            for piece in body:
                conn.send(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            # the registry answered early (an upload it refuses) and hung up: pass its answer on, then close,
            # since the rest of the client's body was never read
            self.close_connection = True
        self._relay(conn.getresponse())

    def _relay(self, resp: http.client.HTTPResponse) -> None:
        self._answered = True
        self.send_response_only(resp.status, resp.reason)
        for key, value in resp.getheaders():
            if key.lower() not in _HOP:
                self.send_header(key, value)
        bodiless = self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
        length = resp.getheader("Content-Length")
        if bodiless or length is not None:
            if length is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
            if not bodiless:
                self._copy(resp, lambda view: self.wfile.write(view))
        else:  # chunked or close-delimited from the backend: chunked to the client
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._copy(resp, lambda view: self.wfile.write(b"%x\r\n%b\r\n" % (len(view), bytes(view))))
            self.wfile.write(b"0\r\n\r\n")
        resp.close()

    @staticmethod
    def _copy(resp: http.client.HTTPResponse, write: Callable[[memoryview], object]) -> None:
        buf = memoryview(bytearray(CHUNK))
        while n := resp.readinto(buf):
            write(buf[:n])

    # --- answers -------------------------------------------------------------------------------------
    def _reply(self, status: int, doc: dict[str, object], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(doc).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _fault(self, status: int) -> None:
        if status == 429:
            after = str(self.server.faults.faults.retry_after)
            self._reply(429, {"errors": [{"code": "TOOMANYREQUESTS", "message": "Rate exceeded (injected)"}]},
                        {"Retry-After": after})
        else:
            self._reply(500, {"errors": [{"code": "UNKNOWN", "message": "internal error (injected)"}]})

    def _drop(self) -> None:
        """Cut both connections: the client sees the registry vanish mid-request."""
        self.close_connection = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        try:
            self.connection.shutdown(2)
        except OSError:
            pass


def _unchecked(reference: str) -> bool:
    """A manifest reference the gate lets through: a digest, or a tag that may move."""
    return ":" in reference or tag_is_mutable(reference)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    """Serve until killed."""
    parser = argparse.ArgumentParser(prog="python -m moka_images.devstack.registry_gate",
                                     description="ECR-like tag immutability and fault injection in front of "
                                                 "a distribution registry")
    parser.add_argument("--listen", required=True, help="host:port the clients use")
    parser.add_argument("--backend", required=True, help="host:port of the real registry")
    parser.add_argument("--faults", type=Path, help="JSON file of faults, re-read when it changes")
    args = parser.parse_args(argv)
    server = GateServer(_address(args.listen), _address(args.backend), args.faults)
    log.info(f"registry gate on {args.listen} -> {args.backend}" + (f", faults from {args.faults}"
                                                                       if args.faults else ""))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
