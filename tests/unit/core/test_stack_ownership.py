"""`dev up` uses only daemons its own MOKA_HOME started: another home's registry on our port is refused."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from moka_images.devstack.services import Daemon, pid_file
from moka_images.devstack.stack import ensure_ours
from moka_images.errors import ServiceError


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def answering() -> Iterator[str]:
    """A URL on loopback that answers, like a registry some other home started."""
    server = HTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v2/"
    server.shutdown()


def test_a_daemon_this_home_did_not_start_is_refused(answering: str, tmp_path: Path) -> None:
    daemon = Daemon("registry-test", ["false"], ready_url=answering)
    with pytest.raises(ServiceError, match="not started from this MOKA_HOME") as caught:
        ensure_ours(daemon, tmp_path / "run")
    assert "dev down" in (caught.value.hint or "")


def test_a_daemon_this_home_started_is_reused(answering: str, tmp_path: Path) -> None:
    rd = tmp_path / "run"
    rd.mkdir()
    pid_file(rd, "registry-test").write_text(json.dumps({"pid": os.getpid(), "argv": ["docker-registry"]}))
    assert ensure_ours(Daemon("registry-test", ["false"], ready_url=answering), rd) == "running"
