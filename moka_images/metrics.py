"""Metrics and traces of one run: step durations, bytes copied, image sizes, findings, gate outcomes.

Collected in memory while a command runs (`log.step` feeds every step in as a span and a duration), then,
when the command ends, written where configured and nowhere else:
  - Prometheus text exposition format to a file (`--metrics-file`, MOKA_METRICS_FILE; written atomically, so
    node_exporter's textfile collector never reads half a file),
  - the same text pushed to a Pushgateway (MOKA_METRICS_PUSH, its base URL), grouped by command,
  - OpenTelemetry spans over OTLP/HTTP with the JSON encoding (MOKA_OTLP_ENDPOINT, the collector's base URL).
Stages call `count`, `set_gauge` and `observe` with one of the metrics declared here: the catalogue is the
one place that names them, so dashboards and code cannot drift apart.
"""

from __future__ import annotations

import contextvars
import math
import os
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import requests

SERVICE = "moka-images"
SCOPE = "moka_images"  # the instrumentation scope: the package that makes the spans
EXPORT_TIMEOUT = 10.0
_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class Metric:
    """One metric family: its name, Prometheus type, help text and the labels every sample carries."""

    name: str
    kind: Literal["counter", "gauge", "summary"]
    help: str
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name) or not all(_LABEL_RE.match(label) for label in self.labels):
            raise ValueError(f"invalid metric or label name in {self.name}{self.labels}")


STEP_SECONDS = Metric("moka_step_duration_seconds", "summary", "Time spent in each step, by stage and outcome.",
                      ("stage", "step", "outcome"))
COMMAND_SECONDS = Metric("moka_command_duration_seconds", "gauge", "Wall time of the command.",
                         ("command", "exit_code"))
BYTES_COPIED = Metric("moka_bytes_copied_total", "counter", "Blob bytes copied between registries.",
                      ("image", "source", "target"))
IMAGE_SIZE = Metric("moka_image_size_bytes", "gauge",
                    "Compressed size of one platform of an image: its config and layers, as pulled.",
                    ("image", "version", "platform"))
FINDINGS = Metric("moka_scan_findings", "gauge", "Findings of the latest scan of one platform, by severity.",
                  ("image", "platform", "severity"))
GATES = Metric("moka_gate_outcomes_total", "counter", "Gate decisions, by gate, environment and outcome.",
               ("gate", "env", "image", "outcome"))
CATALOGUE = (STEP_SECONDS, COMMAND_SECONDS, BYTES_COPIED, IMAGE_SIZE, FINDINGS, GATES)


@dataclass(frozen=True)
class Span:
    """A finished span: a step (or the whole command) with its place in the trace and its outcome."""

    trace_id: str  # 32 hex
    span_id: str  # 16 hex
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, str]
    error: str | None = None


@dataclass
class _Open:
    span_id: str
    stage: str


@dataclass
class Collector:
    """Samples and spans of one process; thread-safe, since builds and copies run in worker threads."""

    values: dict[Metric, dict[tuple[str, ...], list[float]]] = field(default_factory=dict)
    spans: list[Span] = field(default_factory=list)
    trace_id: str = field(default_factory=lambda: secrets.token_hex(16))
    root: _Open | None = None
    root_name: str = ""
    root_start_ns: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _key(self, metric: Metric, labels: Mapping[str, object]) -> tuple[str, ...]:
        if set(labels) != set(metric.labels):
            raise ValueError(f"{metric.name} takes labels {', '.join(metric.labels)}, got {', '.join(labels)}")
        return tuple(str(labels[name]) for name in metric.labels)

    def add(self, metric: Metric, value: float, labels: Mapping[str, object], how: str) -> None:
        """Record one sample: `inc` a counter, `set` a gauge, `observe` into a summary's sum and count."""
        key = self._key(metric, labels)
        with self._lock:
            slot = self.values.setdefault(metric, {}).setdefault(key, [0.0, 0.0])
            if how == "set":
                slot[0] = value
            else:
                slot[0] += value
                slot[1] += 1

    def finish(self, span: Span) -> None:
        """Keep a finished span for export."""
        with self._lock:
            self.spans.append(span)


_collector = Collector()
_current: contextvars.ContextVar[_Open | None] = contextvars.ContextVar("moka_span", default=None)
_metrics_file: Path | None = None


def reset() -> Collector:
    """Start afresh (a new trace, no samples); returns the new collector."""
    global _collector
    _collector = Collector()
    _current.set(None)
    return _collector


def collector() -> Collector:
    """What this process has collected so far."""
    return _collector


def count(metric: Metric, amount: float = 1, **labels: object) -> None:
    """Add to a counter."""
    if metric.kind != "counter" or amount < 0:
        raise ValueError(f"{metric.name} is a {metric.kind}; counters only go up")
    _collector.add(metric, float(amount), labels, "inc")


def set_gauge(metric: Metric, value: float, **labels: object) -> None:
    """Set a gauge to its current value."""
    if metric.kind != "gauge":
        raise ValueError(f"{metric.name} is a {metric.kind}, not a gauge")
    _collector.add(metric, float(value), labels, "set")


def observe(metric: Metric, value: float, **labels: object) -> None:
    """Add one observation (a duration, a size) to a summary."""
    if metric.kind != "summary":
        raise ValueError(f"{metric.name} is a {metric.kind}, not a summary")
    _collector.add(metric, float(value), labels, "observe")


def gate(name: str, env: str, image: str, passed: bool) -> None:
    """Count one gate decision (scan verdict, signature, smoke, approval, ...)."""
    count(GATES, gate=name, env=env, image=image, outcome="passed" if passed else "refused")


def image_bytes(manifest: Mapping[str, Any]) -> int:
    """IMAGE_SIZE of a platform manifest: its config and layers, compressed, as a pull transfers them."""
    return sum(int(d.get("size", 0)) for d in [manifest.get("config") or {}, *(manifest.get("layers") or [])])


# ---- spans -------------------------------------------------------------------------------------


def start_command(name: str) -> None:
    """Start a run afresh with its root span open (the CLI calls this once, before dispatching)."""
    c = reset()
    c.root, c.root_name, c.root_start_ns = _Open(secrets.token_hex(8), ""), name, time.time_ns()


@contextmanager
def span(name: str, **attributes: object) -> Iterator[None]:
    """Time a step as a span under the current one, and as a STEP_SECONDS observation.

    Its stage is the first word of the outermost step it runs in (`build`, `scan`, `copy`, ...). Worker
    threads do not inherit the caller's context, so their steps hang off the command's root span.
    """
    c = _collector
    parent = _current.get() or c.root
    opened = _Open(secrets.token_hex(8), parent.stage if parent and parent.stage else (name.split() or ["-"])[0])
    token = _current.set(opened)
    start_ns, start = time.time_ns(), time.monotonic()
    error: str | None = None
    try:
        yield
    except BaseException as exc:
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        raise
    finally:
        _current.reset(token)
        observe(STEP_SECONDS, time.monotonic() - start, stage=opened.stage, step=name,
                outcome="error" if error else "ok")
        attrs = {"moka.stage": opened.stage, **{k: str(v) for k, v in attributes.items() if v is not None}}
        c.finish(Span(c.trace_id, opened.span_id, parent.span_id if parent else None, name, start_ns,
                      time.time_ns(), attrs, error))


# ---- Prometheus text format --------------------------------------------------------------------


def escape_label(value: str) -> str:
    """A label value as the text format wants it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers without a fraction, and the format's spellings of infinities and NaN."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _labels(metric: Metric, key: Sequence[str]) -> str:
    pairs = ",".join(f'{n}="{escape_label(v)}"' for n, v in zip(metric.labels, key, strict=True))
    return "{" + pairs + "}" if pairs else ""


def exposition(c: Collector | None = None) -> str:
    """Every sample in the Prometheus text exposition format (version 0.0.4), metrics in catalogue order."""
    c = c or _collector
    lines: list[str] = []
    with c._lock:
        values = {m: dict(samples) for m, samples in c.values.items()}
    for metric in sorted(values, key=lambda m: (CATALOGUE.index(m) if m in CATALOGUE else len(CATALOGUE), m.name)):
        lines += [f"# HELP {metric.name} {_escape_help(metric.help)}", f"# TYPE {metric.name} {metric.kind}"]
        for key, (total, n) in sorted(values[metric].items()):
            labels = _labels(metric, key)
            if metric.kind == "summary":
                lines += [f"{metric.name}_sum{labels} {format_value(total)}",
                          f"{metric.name}_count{labels} {format_value(n)}"]
            else:
                lines.append(f"{metric.name}{labels} {format_value(total)}")
    return "\n".join(lines) + "\n" if lines else ""


# ---- OTLP/HTTP JSON ----------------------------------------------------------------------------


def _attributes(values: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"key": k, "value": {"stringValue": v}} for k, v in sorted(values.items())]


def otlp_document(spans: Sequence[Span], resource: Mapping[str, str]) -> dict[str, Any]:
    """An ExportTraceServiceRequest in OTLP's JSON encoding (hex IDs, nanosecond times as decimal strings)."""
    out = []
    for s in spans:
        doc: dict[str, Any] = {
            "traceId": s.trace_id, "spanId": s.span_id, "name": s.name, "kind": 1,  # SPAN_KIND_INTERNAL
            "startTimeUnixNano": str(s.start_ns), "endTimeUnixNano": str(s.end_ns),
            "attributes": _attributes(s.attributes),
            "status": {"code": 2, "message": s.error} if s.error else {"code": 1},
        }
        if s.parent_id:
            doc["parentSpanId"] = s.parent_id
        out.append(doc)
    return {"resourceSpans": [{"resource": {"attributes": _attributes(resource)},
                               "scopeSpans": [{"scope": {"name": SCOPE}, "spans": out}]}]}


# ---- at the end of a command -------------------------------------------------------------------


def configure(metrics_file: Path | None) -> None:
    """`--metrics-file` from the command line; it wins over MOKA_METRICS_FILE."""
    global _metrics_file
    _metrics_file = metrics_file


def write_file(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step (write beside it, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def push(gateway: str, command: str, text: str) -> None:
    """PUT the metrics to a Pushgateway under job=moka-images, command=<command> (replacing that group)."""
    url = f"{gateway.rstrip('/')}/metrics/job/{SERVICE}/command/{urllib.parse.quote(command, safe='')}"
    resp = requests.put(url, data=text.encode(), headers={"Content-Type": "text/plain; version=0.0.4"},
                        timeout=EXPORT_TIMEOUT)
    resp.raise_for_status()


def export_spans(endpoint: str, document: Mapping[str, Any]) -> None:
    """POST spans to an OTLP/HTTP collector: `<endpoint>/v1/traces`, JSON encoded."""
    resp = requests.post(f"{endpoint.rstrip('/')}/v1/traces", json=document, timeout=EXPORT_TIMEOUT)
    resp.raise_for_status()


def finish_command(exit_code: int) -> list[str]:
    """Close the root span, record the command's time, and send everything where configured.

    A sink that fails never changes the command's outcome: the problems are returned for the CLI to warn about.
    """
    c = _collector
    if c.root is not None:
        end = time.time_ns()
        set_gauge(COMMAND_SECONDS, (end - c.root_start_ns) / 1e9, command=c.root_name, exit_code=exit_code)
        c.finish(Span(c.trace_id, c.root.span_id, None, f"{SERVICE} {c.root_name}".strip(), c.root_start_ns, end,
                      {"moka.command": c.root_name, "moka.exit_code": str(exit_code)},
                      None if exit_code == 0 else f"exit code {exit_code}"))
        c.root = None
    problems = []
    text = exposition(c)
    target = _metrics_file or (Path(os.environ["MOKA_METRICS_FILE"]) if os.environ.get("MOKA_METRICS_FILE") else None)
    sinks: list[tuple[str, Callable[[], None]]] = []
    if target:
        sinks.append((f"metrics file {target}", lambda: write_file(target, text)))
    if gateway := os.environ.get("MOKA_METRICS_PUSH"):
        sinks.append((f"Pushgateway {gateway}", lambda: push(gateway, c.root_name.replace(" ", "-") or "-", text)))
    if endpoint := os.environ.get("MOKA_OTLP_ENDPOINT"):
        resource = {"service.name": SERVICE, "moka.command": c.root_name}
        sinks.append((f"OTLP endpoint {endpoint}", lambda: export_spans(endpoint, otlp_document(c.spans, resource))))
    for what, send in sinks:
        try:
            send()
        except (OSError, requests.RequestException) as exc:
            problems.append(f"could not send metrics to {what}: {exc}")
    return problems
