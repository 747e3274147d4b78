"""Metrics and traces of one run: step durations, bytes copied, image sizes, findings, gate outcomes.

Collected in memory while a command runs (`log.step` feeds every step in as a span and a duration), in a
registry of its own (prometheus_client's, made only to write or push), then, when the command ends, written
where configured and nowhere else:
  - Prometheus text exposition format to a file (`--metrics-file`, MOKA_METRICS_FILE; written atomically, so
    node_exporter's textfile collector never reads half a file),
  - the same metrics pushed to a Pushgateway (MOKA_METRICS_PUSH, its base URL), grouped by command,
  - OpenTelemetry spans over OTLP/HTTP with the JSON encoding (MOKA_OTLP_ENDPOINT, the collector's base URL).
Stages call `count`, `set_gauge` and `observe` with one of the metrics declared here: the catalogue is the
one place that names them, so dashboards and code cannot drift apart. The network sends are a `Sender`'s
(adapters/telemetry.py); this module decides what goes where.
"""

from __future__ import annotations

import contextvars
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric as Family

SERVICE = "moka-images"
SCOPE = "moka_images"  # the instrumentation scope: the package that makes the spans
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
        if self.kind == "counter" and not self.name.endswith("_total"):
            # the text format names a counter <name>_total whatever it was declared as
            raise ValueError(f"counter {self.name} must end in _total")


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
    """Samples and spans of one command run; thread-safe, since builds and copies run in worker threads.

    Samples are plain numbers until the run's metrics are written or pushed: only then is prometheus_client
    loaded (`registry`), which every command would otherwise pay for at start-up (about 40 ms with http.server, by
`python -X importtime`) and most never use.
    A metric appears once its first sample comes, so the output holds only what was recorded.
    """

    spans: list[Span] = field(default_factory=list)
    trace_id: str = field(default_factory=lambda: secrets.token_hex(16))
    root: _Open | None = None
    root_name: str = ""
    root_start_ns: int = 0
    # per metric, per label values: [value] (counter, gauge) or [count, sum] (summary), in order of first sample
    _samples: dict[Metric, dict[tuple[str, ...], list[float]]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, metric: Metric, labels: Mapping[str, object], value: float) -> None:
        """Add to a counter, set a gauge or observe into a summary, on the series with these labels (all of the
        metric's labels, no others)."""
        if set(labels) != set(metric.labels):
            raise ValueError(f"{metric.name} takes labels {', '.join(metric.labels)}, got {', '.join(labels)}")
        key = tuple(str(labels[name]) for name in metric.labels)
        with self._lock:
            series = self._samples.setdefault(metric, {})
            if metric.kind == "summary":
                kept = series.setdefault(key, [0.0, 0.0])
                kept[0], kept[1] = kept[0] + 1, kept[1] + value
            elif metric.kind == "counter":
                series[key] = [series.get(key, [0.0])[0] + value]
            else:
                series[key] = [value]

    @property
    def registry(self) -> CollectorRegistry:
        """The samples so far in a prometheus_client registry of their own, to write or push."""
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry()
        registry.register(_Families(self))
        return registry

    def families(self) -> list[Family]:
        """The samples so far as prometheus_client metric families (the library's custom collector form)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

        with self._lock:
            samples = [(metric, {key: list(v) for key, v in series.items()}) for metric, series in self._samples.items()]
        out: list[Family] = []
        for metric, series in samples:
            labels = list(metric.labels)
            if metric.kind == "summary":
                summary = SummaryMetricFamily(metric.name, metric.help, labels=labels)
                for key, (n, total) in series.items():
                    summary.add_metric(list(key), int(n), total)
                out.append(summary)
            else:
                kind = CounterMetricFamily if metric.kind == "counter" else GaugeMetricFamily
                family = kind(metric.name, metric.help, labels=labels)
                for key, (value,) in series.items():
                    family.add_metric(list(key), value)
                out.append(family)
        return out

    def finish(self, span: Span) -> None:
        """Keep a finished span for export."""
        with self._lock:
            self.spans.append(span)


class _Families:
    """A prometheus_client custom collector over a run's samples."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Family]:
        """Every metric family recorded so far."""
        yield from self.collector.families()


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
    _collector.record(metric, labels, amount)


def set_gauge(metric: Metric, value: float, **labels: object) -> None:
    """Set a gauge to its current value."""
    if metric.kind != "gauge":
        raise ValueError(f"{metric.name} is a {metric.kind}, not a gauge")
    _collector.record(metric, labels, value)


def observe(metric: Metric, value: float, **labels: object) -> None:
    """Add one observation (a duration, a size) to a summary."""
    if metric.kind != "summary":
        raise ValueError(f"{metric.name} is a {metric.kind}, not a summary")
    _collector.record(metric, labels, value)


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


def exposition(c: Collector | None = None) -> str:
    """Every sample in the Prometheus text exposition format (version 0.0.4); empty if none was recorded."""
    from prometheus_client import generate_latest

    return generate_latest((c or _collector).registry).decode()


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


class Sender(Protocol):
    """What carries metrics and spans off the machine: adapters/telemetry.py, or a stand-in in tests.

    Each call raises OSError (or ValueError, for an address it cannot use) when its sink is not reached.
    """

    def push(self, gateway: str, job: str, grouping: Mapping[str, str], registry: CollectorRegistry) -> None:
        """Replace the Pushgateway group `job` + `grouping` with the registry's metrics."""

    def export_spans(self, endpoint: str, document: Mapping[str, Any]) -> None:
        """Send an OTLP JSON document to an OTLP/HTTP collector."""


def write_file(path: Path, registry: CollectorRegistry) -> None:
    """Replace `path` with the registry's metrics in one step (written beside it, then renamed)."""
    from prometheus_client import write_to_textfile

    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)


def finish_command(exit_code: int, sender: Sender) -> list[str]:
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
    target = _metrics_file or (Path(os.environ["MOKA_METRICS_FILE"]) if os.environ.get("MOKA_METRICS_FILE") else None)
    gateway, endpoint = os.environ.get("MOKA_METRICS_PUSH"), os.environ.get("MOKA_OTLP_ENDPOINT")
    sinks: list[tuple[str, Callable[[], None]]] = []
    if target:
        sinks.append((f"metrics file {target}", lambda: write_file(target, c.registry)))
    if gateway:
        group = {"command": c.root_name.replace(" ", "-") or "-"}
        sinks.append((f"Pushgateway {gateway}", lambda: sender.push(gateway, SERVICE, group, c.registry)))
    if endpoint:
        resource = {"service.name": SERVICE, "moka.command": c.root_name}
        sinks.append((f"OTLP endpoint {endpoint}",
                      lambda: sender.export_spans(endpoint, otlp_document(c.spans, resource))))
    for what, send in sinks:
        try:
            send()
        except (OSError, ValueError) as exc:  # requests' and urllib's errors are OSErrors; a bad URL, ValueError
            problems.append(f"could not send metrics to {what}: {exc}")
    return problems
