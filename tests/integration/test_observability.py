"""Metrics and spans of real commands against the local stack: the metrics file, a Pushgateway and an OTLP
collector (both stand-ins on loopback that record what they get), image sizes from a build, findings from a scan.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from observability_support import capture_server, parse_exposition

from moka_images.adapters import run
from moka_images.config.settings import Settings
from moka_images.models import Environment
from moka_images.stages import registries
from moka_images.stages.build import BuiltImage

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "moka_images.cli"]


def _env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("MOKA_METRICS_FILE", "MOKA_METRICS_PUSH", "MOKA_OTLP_ENDPOINT", "MOKA_REPOSITORY_PREFIX")}
    return {**clean, "MOKA_ROOT": str(ROOT), **extra}


def test_plan_sends_metrics_to_the_file_the_pushgateway_and_spans_to_otlp(stack: Settings, tmp_path: Path) -> None:
    target = tmp_path / "metrics" / "plan.prom"
    with capture_server() as (url, received):
        done = run.call([*CLI, "--log-format", "json", "plan", "--json"], check=False, env=_env(
            MOKA_METRICS_FILE=str(target), MOKA_METRICS_PUSH=url + "/gw", MOKA_OTLP_ENDPOINT=url + "/otel"))
    assert done.returncode == 0, done.stderr[-2000:]
    text = target.read_text()
    families, samples = parse_exposition(text)
    assert families["moka_step_duration_seconds"][1] == "summary"
    assert ("moka_step_duration_seconds_count", {"stage": "plan", "step": "plan", "outcome": "ok"}, 1.0) in samples
    (command,) = [(labels, v) for name, labels, v in samples if name == "moka_command_duration_seconds"]
    assert command[0] == {"command": "plan", "exit_code": "0"} and 0 < command[1] < 300

    pushes = [r for r in received if r.method == "PUT"]
    assert [p.path for p in pushes] == ["/gw/metrics/job/moka-images/command/plan"]
    assert pushes[0].body.decode() == text and pushes[0].headers["content-type"].startswith("text/plain")

    traces = [r for r in received if r.method == "POST"]
    assert [t.path for t in traces] == ["/otel/v1/traces"]
    assert traces[0].headers["content-type"] == "application/json"
    doc = json.loads(traces[0].body)
    resource = doc["resourceSpans"][0]
    assert {"key": "service.name", "value": {"stringValue": "moka-images"}} in resource["resource"]["attributes"]
    spans = {s["name"]: s for s in resource["scopeSpans"][0]["spans"]}
    assert {"moka-images plan", "plan"} <= set(spans)
    assert spans["plan"]["parentSpanId"] == spans["moka-images plan"]["spanId"]
    assert spans["plan"]["traceId"] == spans["moka-images plan"]["traceId"]
    assert spans["moka-images plan"]["status"] == {"code": 1}
    # the JSON logs are there as well, one object a line
    logged = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(entry["msg"] == "✓ plan" and "seconds" in entry for entry in logged)


def test_build_reports_sizes_per_arch_and_scan_reports_findings_and_its_verdict(
        built: dict[str, BuiltImage], stack: Settings, tmp_path: Path) -> None:
    out = tmp_path / "build.prom"
    done = run.call([*CLI, "--metrics-file", str(out), "build", "spark-3.5", "--json"], check=False, env=_env())
    assert done.returncode == 0, done.stderr[-2000:]
    _, samples = parse_exposition(out.read_text())
    sizes = {labels["platform"]: int(v) for name, labels, v in samples
             if name == "moka_image_size_bytes" and labels["image"] == "spark-3.5"}
    image = built["spark-3.5"]
    client = registries.client(stack, Environment.TEST)
    expected = {}
    for platform, digest in image.platforms.items():
        doc = client.get_manifest(stack.repository("spark-3.5"), str(digest)).json
        expected[str(platform)] = doc["config"]["size"] + sum(layer["size"] for layer in doc["layers"])
    assert sizes == expected and set(sizes) == {"linux/amd64", "linux/arm64"}
    assert all(n > 100_000_000 for n in sizes.values())  # a Spark runtime, not an empty manifest

    out = tmp_path / "scan.prom"
    done = run.call([*CLI, "scan", "spark-3.5", "--env", "test"], check=False,
                    env=_env(MOKA_METRICS_FILE=str(out)))
    assert done.returncode in (0, 7), done.stderr[-2000:]
    _, samples = parse_exposition(out.read_text())
    findings = {(labels["platform"], labels["severity"]) for name, labels, _ in samples
                if name == "moka_scan_findings" and labels["image"] == "spark-3.5"}
    assert findings == {(p, s) for p in ("linux/amd64", "linux/arm64")
                        for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN", "SECRETS")}
    outcome = "passed" if done.returncode == 0 else "refused"
    assert ("moka_gate_outcomes_total", {"gate": "scan", "env": "test", "image": "spark-3.5", "outcome": outcome},
            1.0) in samples
    assert any(name == "moka_step_duration_seconds_count" and labels["stage"] == "trivy"
               for name, labels, _ in samples) or "reused cached scans" in done.stderr


def test_an_unreachable_collector_warns_but_never_fails_the_command(stack: Settings, tmp_path: Path) -> None:
    with capture_server() as (url, _):
        pass  # the port is free again: nothing listens there now
    done = run.call([*CLI, "plan"], check=False, env=_env(MOKA_OTLP_ENDPOINT=url,
                                                         MOKA_METRICS_FILE=str(tmp_path / "m.prom")))
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"could not send metrics to OTLP endpoint {url}" in done.stderr
    assert (tmp_path / "m.prom").exists()
