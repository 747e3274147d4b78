"""Helpers for the observability tests: a reader of Prometheus' text format, and an HTTP server on
loopback that records what it is sent (a stand-in Pushgateway and OTLP collector)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, dict[str, str], float]


def parse_exposition(text: str) -> tuple[dict[str, tuple[str, str]], list[Sample]]:
    """(HELP and TYPE per family, samples with their labels unescaped), as prometheus_client's own parser reads
    the text: an oracle independent of the code that wrote it. Fails on any malformed line or untyped sample.

    The parser names families as OpenMetrics does: a counter `x_total` is family `x`, its samples `x_total`.
    """
    assert text.endswith("\n"), "the exposition ends with a newline"
    families: dict[str, tuple[str, str]] = {}
    samples: list[Sample] = []
    for family in text_string_to_metric_families(text):
        assert family.type != "unknown", f"samples of {family.name} without HELP/TYPE"
        assert family.name not in families, f"{family.name} is declared twice"
        families[family.name] = (family.documentation, family.type)
        samples += [(s.name, s.labels, float(s.value)) for s in family.samples]
    return families, samples


@dataclass(frozen=True)
class Received:
    """One request the capture server got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@contextmanager
def capture_server() -> Iterator[tuple[str, list[Received]]]:
    """An HTTP server on 127.0.0.1 (a free port) answering 200 to everything; yields its URL and the requests."""
    received: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.append(Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                     self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = do_PUT = _record

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
