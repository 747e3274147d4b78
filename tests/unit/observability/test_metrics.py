"""Metrics and spans without any process or network: the exposition format, label rules, span trees, OTLP JSON."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from observability_support import parse_exposition as parse
from prometheus_client import CollectorRegistry, generate_latest

from moka_images import cli, log, metrics
from moka_images.adapters import telemetry
from moka_images.config import os_base
from moka_images.models import Digest
from moka_images.stages import registries

ROOT = Path(__file__).resolve().parents[3]

@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> metrics.Collector:
    for name in ("MOKA_METRICS_FILE", "MOKA_METRICS_PUSH", "MOKA_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    metrics.configure(None)
    return metrics.reset()


def test_exposition_of_each_kind() -> None:
    metrics.count(metrics.BYTES_COPIED, 1024, image="spark-3.5", source="test", target="dev")
    metrics.count(metrics.BYTES_COPIED, 1024, image="spark-3.5", source="test", target="dev")
    metrics.set_gauge(metrics.IMAGE_SIZE, 5, image="a", version="1.0.0", platform="linux/arm64")
    metrics.set_gauge(metrics.IMAGE_SIZE, 830_123_456, image="a", version="1.0.0", platform="linux/arm64")
    metrics.observe(metrics.STEP_SECONDS, 1.5, stage="build", step="build a", outcome="ok")
    metrics.observe(metrics.STEP_SECONDS, 0.25, stage="build", step="build a", outcome="ok")
    text = metrics.exposition()
    families, samples = parse(text)
    assert families == {
        "moka_step_duration_seconds": ("Time spent in each step, by stage and outcome.", "summary"),
        "moka_bytes_copied": ("Blob bytes copied between registries.", "counter"),
        "moka_image_size_bytes": ("Compressed size of one platform of an image: its config and layers, as pulled.",
                                  "gauge")}
    step = {"stage": "build", "step": "build a", "outcome": "ok"}
    assert sorted(samples) == sorted([
        ("moka_step_duration_seconds_sum", step, 1.75),
        ("moka_step_duration_seconds_count", step, 2.0),
        ("moka_bytes_copied_total", {"image": "spark-3.5", "source": "test", "target": "dev"}, 2048.0),
        ("moka_image_size_bytes", {"image": "a", "version": "1.0.0", "platform": "linux/arm64"}, 830_123_456.0)])
    # the names a Prometheus server (and so every dashboard) sees, in the text format it scrapes
    for line in ("# TYPE moka_step_duration_seconds summary", "# TYPE moka_bytes_copied_total counter",
                 "# TYPE moka_image_size_bytes gauge"):
        assert line in text.splitlines()


def test_nothing_collected_is_an_empty_exposition() -> None:
    assert metrics.exposition() == ""


@pytest.mark.parametrize("value", ['back\\slash', 'a "quoted" word', "two\nlines", 'all \\ " \n of them',
                                   "ünïcödé ✓", "trailing\\"])
def test_label_values_round_trip_through_escaping(value: str) -> None:
    metrics.gate("scan", "prod", value, False)
    text = metrics.exposition()
    families, samples = parse(text)
    assert families["moka_gate_outcomes"][1] == "counter"
    assert samples == [("moka_gate_outcomes_total",
                        {"gate": "scan", "env": "prod", "image": value, "outcome": "refused"}, 1.0)]
    assert len(text.splitlines()) == 3  # HELP, TYPE and one sample: no value spills onto a line of its own


def test_help_text_is_escaped() -> None:
    odd = metrics.Metric("moka_test_odd", "gauge", "a \\ backslash\nand a newline", ())
    metrics.set_gauge(odd, 1)
    text = metrics.exposition()
    assert text.splitlines()[0] == "# HELP moka_test_odd a \\\\ backslash\\nand a newline"
    assert parse(text) == ({"moka_test_odd": ("a \\ backslash\nand a newline", "gauge")},
                           [("moka_test_odd", {}, 1.0)])


@pytest.mark.parametrize("value", [3.0, 0.1, 1e20, -2.0, 830_123_456.0, float("inf"), float("-inf")])
def test_values_round_trip(value: float) -> None:
    metrics.set_gauge(metrics.IMAGE_SIZE, value, image="a", version="1", platform="p")
    (_, _, read), = parse(metrics.exposition())[1]
    assert read == value


def test_not_a_number_round_trips() -> None:
    metrics.set_gauge(metrics.IMAGE_SIZE, float("nan"), image="a", version="1", platform="p")
    (_, _, read), = parse(metrics.exposition())[1]
    assert math.isnan(read)


def test_labels_and_kinds_are_checked() -> None:
    with pytest.raises(ValueError, match="takes labels image, source, target"):
        metrics.count(metrics.BYTES_COPIED, 1, image="x")
    with pytest.raises(ValueError, match="takes labels"):
        metrics.set_gauge(metrics.IMAGE_SIZE, 1, image="x", version="1", platform="p", extra="no")
    with pytest.raises(ValueError, match="counters only go up"):
        metrics.count(metrics.BYTES_COPIED, -1, image="x", source="a", target="b")
    with pytest.raises(ValueError, match="not a gauge"):
        metrics.set_gauge(metrics.BYTES_COPIED, 1, image="x", source="a", target="b")
    with pytest.raises(ValueError, match="not a summary"):
        metrics.observe(metrics.IMAGE_SIZE, 1, image="x", version="1", platform="p")
    with pytest.raises(ValueError, match="invalid metric"):
        metrics.Metric("moka-bad-name", "gauge", "x", ())
    with pytest.raises(ValueError, match="invalid metric"):
        metrics.Metric("moka_ok", "gauge", "x", ("bad-label",))


def test_steps_become_a_span_tree_with_stages_and_outcomes() -> None:
    metrics.start_command("build")
    with log.step("plan"):
        pass
    with log.step("build spark-3.5 1.0.0-abc", reason="first build"), log.step("spark-3.5 linux/arm64"):
        pass
    with pytest.raises(RuntimeError), log.step("scan spark-3.5"), log.step("trivy linux/amd64"):
        raise RuntimeError("trivy died\nwith details")
    c = metrics.collector()
    spans = {s.name: s for s in c.spans}
    root = c.root
    assert root is not None
    assert spans["plan"].parent_id == root.span_id
    assert spans["spark-3.5 linux/arm64"].parent_id == spans["build spark-3.5 1.0.0-abc"].span_id
    assert spans["spark-3.5 linux/arm64"].attributes["moka.stage"] == "build"
    assert spans["build spark-3.5 1.0.0-abc"].attributes["reason"] == "first build"
    assert spans["trivy linux/amd64"].error == "RuntimeError: trivy died"
    assert spans["scan spark-3.5"].error == "RuntimeError: trivy died"
    assert spans["plan"].error is None
    assert {s.trace_id for s in c.spans} == {c.trace_id}
    assert all(s.end_ns >= s.start_ns for s in c.spans)
    _, samples = parse(metrics.exposition())
    counts = {(lab["stage"], lab["step"], lab["outcome"]) for name, lab, _ in samples
              if name == "moka_step_duration_seconds_count"}
    assert counts == {("plan", "plan", "ok"), ("build", "build spark-3.5 1.0.0-abc", "ok"),
                      ("build", "spark-3.5 linux/arm64", "ok"), ("scan", "scan spark-3.5", "error"),
                      ("scan", "trivy linux/amd64", "error")}


def test_otlp_document_follows_the_json_encoding(tmp_path: Path) -> None:
    metrics.start_command("plan")
    with log.step("plan"):
        pass
    assert metrics.finish_command(2, telemetry) == []  # nothing configured, nothing sent
    c = metrics.collector()
    doc = metrics.otlp_document(c.spans, {"service.name": "moka-images"})
    json.dumps(doc)  # JSON-safe
    (resource_spans,) = doc["resourceSpans"]
    assert resource_spans["resource"]["attributes"] == [{"key": "service.name",
                                                         "value": {"stringValue": "moka-images"}}]
    (scope,) = resource_spans["scopeSpans"]
    by_name = {s["name"]: s for s in scope["spans"]}
    assert set(by_name) == {"plan", "moka-images plan"}
    root, child = by_name["moka-images plan"], by_name["plan"]
    assert "parentSpanId" not in root and child["parentSpanId"] == root["spanId"]
    for span in (root, child):
        assert re.fullmatch(r"[0-9a-f]{32}", span["traceId"]) and re.fullmatch(r"[0-9a-f]{16}", span["spanId"])
        assert span["startTimeUnixNano"].isdigit() and int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])
        assert span["kind"] == 1
    assert root["status"] == {"code": 2, "message": "exit code 2"} and child["status"] == {"code": 1}


def test_the_cli_writes_the_metrics_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    class Empty:
        def list_tags(self, repository: str) -> list[str]:
            return []

        def head_manifest(self, repository: str, reference: str) -> Digest | None:
            return None

    monkeypatch.setenv("MOKA_ROOT", str(ROOT))
    monkeypatch.setenv("MOKA_HOME", str(tmp_path))
    monkeypatch.setattr(os_base, "read_lock", lambda s: os_base.OsBaseLock("m/debian:x", "sha256:" + "a" * 64, {}))
    monkeypatch.setattr(registries, "client", lambda settings, env: Empty())
    out = tmp_path / "out" / "moka.prom"
    monkeypatch.setenv("MOKA_METRICS_FILE", str(tmp_path / "ignored.prom"))  # the flag wins

    assert cli.main(["--metrics-file", str(out), "plan", "--json"]) == 0

    assert not (tmp_path / "ignored.prom").exists()
    families, samples = parse(out.read_text())
    assert families["moka_command_duration_seconds"][1] == "gauge"
    assert [lab for name, lab, _ in samples if name == "moka_command_duration_seconds"] == [
        {"command": "plan", "exit_code": "0"}]
    assert ("moka_step_duration_seconds_count", {"stage": "plan", "step": "plan", "outcome": "ok"}, 1.0) in samples
    assert [p.name for p in out.parent.iterdir()] == ["moka.prom"]  # written beside and renamed: nothing left


def test_command_names_include_nested_subcommands() -> None:
    args = cli.build_parser().parse_args(["--profile", "local", "db", "mirror", "--advisories", "x.yaml"])
    assert cli._command_name(args) == "db mirror"
    assert cli._command_name(cli.build_parser().parse_args(["rescan", "--env", "prod"])) == "rescan"


def test_image_bytes_is_config_plus_layers() -> None:
    manifest = {"config": {"digest": "sha256:c", "size": 100},
                "layers": [{"digest": "sha256:l1", "size": 1000}, {"digest": "sha256:l2", "size": 24}]}
    assert metrics.image_bytes(manifest) == 1124
    assert metrics.image_bytes({"manifests": []}) == 0


class Sender:
    """A stand-in for adapters/telemetry: records what it is given, fails when told to."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.pushed: list[tuple[str, str, dict[str, str], str]] = []
        self.exported: list[tuple[str, dict[str, Any]]] = []

    def push(self, gateway: str, job: str, grouping: Mapping[str, str], registry: CollectorRegistry) -> None:
        if self.fail:
            raise self.fail
        self.pushed.append((gateway, job, dict(grouping), generate_latest(registry).decode()))

    def export_spans(self, endpoint: str, document: Mapping[str, Any]) -> None:
        if self.fail:
            raise self.fail
        self.exported.append((endpoint, dict(document)))


def test_finish_sends_to_every_configured_sink(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MOKA_METRICS_PUSH", "http://gw.example:9091")
    monkeypatch.setenv("MOKA_OTLP_ENDPOINT", "http://otel.example:4318")
    metrics.configure(tmp_path / "m.prom")
    metrics.start_command("db mirror")
    with log.step("mirror"):
        pass
    sender = Sender()
    assert metrics.finish_command(0, sender) == []
    text = (tmp_path / "m.prom").read_text()
    assert sender.pushed == [("http://gw.example:9091", "moka-images", {"command": "db-mirror"}, text)]
    ((endpoint, doc),) = sender.exported
    assert endpoint == "http://otel.example:4318"
    (resource,) = doc["resourceSpans"]
    assert {"key": "moka.command", "value": {"stringValue": "db mirror"}} in resource["resource"]["attributes"]
    assert {s["name"] for s in resource["scopeSpans"][0]["spans"]} == {"mirror", "moka-images db mirror"}


@pytest.mark.parametrize("failure", [OSError("connection refused"), ValueError("unknown url type: 'gw'")])
def test_a_failing_sink_is_a_problem_not_a_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   failure: Exception) -> None:
    monkeypatch.setenv("MOKA_METRICS_PUSH", "gw")
    monkeypatch.setenv("MOKA_OTLP_ENDPOINT", "http://otel.example")
    metrics.configure(tmp_path / "m.prom")
    metrics.start_command("plan")
    assert metrics.finish_command(0, Sender(failure)) == [
        f"could not send metrics to Pushgateway gw: {failure}",
        f"could not send metrics to OTLP endpoint http://otel.example: {failure}"]
    assert (tmp_path / "m.prom").exists()


def test_finish_sends_through_the_telemetry_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    pushed: list[str] = []
    monkeypatch.setattr(telemetry, "push", lambda gateway, *args: pushed.append(gateway))
    monkeypatch.setenv("MOKA_METRICS_PUSH", "http://gw.example")
    metrics.start_command("plan")
    assert metrics.finish_command(0, telemetry) == [] and pushed == ["http://gw.example"]


def test_counters_are_named_as_the_text_format_names_them() -> None:
    with pytest.raises(ValueError, match="must end in _total"):
        metrics.Metric("moka_things", "counter", "x", ())


def test_every_metric_of_the_catalogue_comes_out_as_declared() -> None:
    record = {"counter": metrics.count, "gauge": metrics.set_gauge, "summary": metrics.observe}
    for metric in metrics.CATALOGUE:
        record[metric.kind](metric, 1, **{label: "x" for label in metric.labels})
    families, samples = parse(metrics.exposition())
    assert families == {metric.name.removesuffix("_total"): (metric.help, metric.kind) for metric in metrics.CATALOGUE}
    assert {name for name, _, _ in samples} == {
        *(m.name for m in metrics.CATALOGUE if m.kind != "summary"),
        *(f"{m.name}_{part}" for m in metrics.CATALOGUE if m.kind == "summary" for part in ("sum", "count"))}
