"""`moka-images report` for the local stack, opened in a real headless Chromium: the page renders its matrix
and plots with its own script running, and asks the network for nothing.

Chromium is pointed at a recording proxy on loopback and cannot resolve any other name, so a request to
anywhere is seen there and goes nowhere. The browser asks its own services (component updates, network time,
sign-in) whatever the flags say; those are told apart by host, and a control page with one external image
proves that a page's request would be seen.
"""

from __future__ import annotations

import os
import re
import struct
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from observability_support import capture_server

from moka_images.adapters import run
from moka_images.config.manifests import load_declarations
from moka_images.config.settings import Settings
from moka_images.stages.build import BuiltImage

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WINDOW = (1400, 1000)


class _Dom(HTMLParser):
    """What the test looks for in the rendered DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.charts: dict[str, list[str]] = {}
        self.svgs = 0
        self.body: dict[str, str | None] = {}
        self.refs: list[str] = []
        self._article: str | None = None
        self._chart: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action", "poster")]
        if tag == "body":
            self.body = a
        elif tag == "tr" and a.get("data-image"):
            self.rows.append(a["data-image"] or "")
        elif tag == "article":
            self._article = a.get("data-image")
        elif tag == "figure" and self._article:
            self._chart = a.get("data-chart")
        elif tag == "svg":
            self.svgs += 1
            if self._article and self._chart:
                self.charts.setdefault(self._article, []).append(self._chart)


BROWSER_SERVICES = (".google.com", ".googleapis.com", ".gvt1.com")  # Chromium's own, not the page's
CONTROL_HOST = "moka-report-control.invalid"


def _chromium(page: Path, proxy: str, *mode: str) -> run.Completed:
    return run.call([
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
        "--disable-extensions", f"--user-data-dir={page.parent / 'profile'}", f"--proxy-server={proxy}",
        # No name resolves except the proxy's address: nothing can leave the machine, proxied or not.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *mode, page.as_uri()], timeout=120, cwd=page.parent)


def _hosts(received: list) -> set[str]:
    return {(r.path.split("/")[2] if r.path.startswith("http") else r.path).rsplit(":", 1)[0] for r in received}


def test_the_report_renders_in_a_headless_browser(built: dict[str, BuiltImage], stack: Settings,
                                                   tmp_path: Path) -> None:
    env = {**os.environ, "MOKA_ROOT": str(ROOT)}
    env.pop("MOKA_REPOSITORY_PREFIX", None)
    done = run.call([sys.executable, "-m", "moka_images.cli", "report", "--output", str(tmp_path / "report.html")],
                    env=env, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    page = (tmp_path / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)

    control = tmp_path / "control" / "control.html"
    control.parent.mkdir()
    control.write_text(f'<!DOCTYPE html><html><body><img src="http://{CONTROL_HOST}/pixel.png"></body></html>')
    with capture_server() as (proxy, seen_by_control):
        _chromium(control, proxy, "--dump-dom")
    assert CONTROL_HOST in _hosts(seen_by_control)  # the watch works: a page's request reaches the proxy

    with capture_server() as (proxy, requests):
        dom_out = _chromium(tmp_path / "report.html", proxy, "--dump-dom")
        shot = tmp_path / "report.png"
        _chromium(tmp_path / "report.html", proxy, f"--screenshot={shot}")
    from_page = {h for h in _hosts(requests) if not h.endswith(BROWSER_SERVICES)}
    assert from_page == set(), f"the report asked the network for {from_page}"

    dom = _Dom()
    dom.feed(dom_out.stdout)
    declared = [i.name for i in load_declarations(stack.root).images]
    assert dom.body.get("data-ready") == "true"  # the inline script ran
    assert f"{len(declared)} of {len(declared)} images shown" in dom_out.stdout
    assert dom.rows == declared
    assert dom.refs == []
    for name in declared:  # every image is built in test, so each has its size plot
        assert "sizes" in dom.charts.get(name, []), (name, dom.charts)
    assert dom.svgs >= len(declared)

    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == WINDOW
    assert len(png) > 20_000  # a blank page compresses to far less
