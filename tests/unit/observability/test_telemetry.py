"""The telemetry adapter without a network: what it would PUT to a Pushgateway and POST to an OTLP collector."""

from __future__ import annotations

import http.client
from typing import Any

import prometheus_client
import pytest
import requests
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from moka_images.adapters import telemetry

Request = tuple[str, str, float | None, list[tuple[str, str]], bytes]


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge("moka_command_duration_seconds", "Wall time.", ["command"], registry=registry).labels("plan").set(1.5)
    return registry


def recording(monkeypatch: pytest.MonkeyPatch, fail: Exception | None = None) -> list[Request]:
    """Let prometheus_client build the request, and record it instead of sending it."""
    sent: list[Request] = []
    real = prometheus_client.push_to_gateway  # telemetry imports it when it pushes, so the library's is replaced

    def handler(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]],
                data: bytes) -> Any:
        def send() -> None:
            sent.append((url, method, timeout, headers, data))
            if fail:
                raise fail
        return send

    monkeypatch.setattr(prometheus_client, "push_to_gateway", lambda *a, **kw: real(*a, handler=handler, **kw))
    return sent


def test_a_push_replaces_the_group_of_one_command(monkeypatch: pytest.MonkeyPatch,
                                                  registry: CollectorRegistry) -> None:
    sent = recording(monkeypatch)
    telemetry.push("http://gw.example:9091/", "moka-images", {"command": "db-mirror"}, registry)
    ((url, method, timeout, headers, data),) = sent
    assert (url, method, timeout) == ("http://gw.example:9091/metrics/job/moka-images/command/db-mirror", "PUT",
                                      telemetry.EXPORT_TIMEOUT)
    assert dict(headers)["Content-Type"].startswith("text/plain; version=0.0.4")
    assert data == generate_latest(registry)


def test_a_garbled_answer_from_the_gateway_is_an_os_error(monkeypatch: pytest.MonkeyPatch,
                                                          registry: CollectorRegistry) -> None:
    recording(monkeypatch, http.client.BadStatusLine("HTTP/9"))
    with pytest.raises(OSError, match="BadStatusLine"):
        telemetry.push("http://gw.example", "moka-images", {"command": "plan"}, registry)


class Answer:
    def __init__(self, status: int) -> None:
        self.status = status

    def raise_for_status(self) -> None:
        if self.status >= 400:
            raise requests.HTTPError(f"{self.status} Server Error")


def test_spans_are_posted_as_json_to_v1_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    posted: list[tuple[str, Any, Any]] = []
    monkeypatch.setattr(requests, "post", lambda url, json, timeout: posted.append((url, json, timeout)) or Answer(200))
    telemetry.export_spans("http://otel.example:4318/", {"resourceSpans": []})
    assert posted == [("http://otel.example:4318/v1/traces", {"resourceSpans": []}, telemetry.EXPORT_TIMEOUT)]


def test_a_refused_export_is_an_os_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(requests, "post", lambda *a, **kw: Answer(503))
    with pytest.raises(OSError, match="503"):
        telemetry.export_spans("http://otel.example", {"resourceSpans": []})
