"""Helpers for the observability tests: a strict reader of Prometheus' text format, and an HTTP server on
loopback that records what it is sent (a stand-in Pushgateway and OTLP collector)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"(?:,|$)')

Sample = tuple[str, dict[str, str], str]


def parse_exposition(text: str) -> tuple[dict[str, tuple[str, str]], list[Sample]]:
    """(HELP and TYPE per family, samples with their labels unescaped); fails on any malformed line."""
    families: dict[str, tuple[str, str]] = {}
    helps: dict[str, str] = {}
    samples: list[Sample] = []
    assert text.endswith("\n"), "the exposition ends with a newline"
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name in helps, f"TYPE before HELP for {name}"
            families[name] = (helps[name], kind)
        else:
            m = _SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            labels, raw, pos = {}, m["labels"] or "", 0
            while pos < len(raw):
                lm = _LABEL.match(raw, pos)
                assert lm, f"bad labels in {line!r} at {raw[pos:]!r}"
                labels[lm["name"]] = re.sub(r"\\(.)", lambda e: "\n" if e[1] == "n" else e[1], lm["value"])
                pos = lm.end()
            family = re.sub(r"_(sum|count)$", "", m["name"])
            assert m["name"] in families or family in families, f"sample {m['name']} without HELP/TYPE"
            samples.append((m["name"], labels, m["value"]))
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
