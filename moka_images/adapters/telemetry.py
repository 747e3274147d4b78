"""Metrics and spans off the machine: a Pushgateway push (prometheus_client's) and OTLP/HTTP span export.

The `metrics.Sender` that `metrics.finish_command` uses. It imports nothing of moka_images, so the metrics
module, at the bottom of the package, can reach it without an import cycle.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

EXPORT_TIMEOUT = 10.0


def push(gateway: str, job: str, grouping: Mapping[str, str], registry: CollectorRegistry) -> None:
    """PUT the registry's metrics to a Pushgateway as group `job` + `grouping`, replacing that group."""
    from prometheus_client import push_to_gateway  # here: only a run that pushes loads it

    try:
        push_to_gateway(gateway, job, registry, grouping_key=dict(grouping), timeout=EXPORT_TIMEOUT)
    except http.client.HTTPException as exc:  # a garbled answer; the Sender contract is OSError
        raise OSError(f"{type(exc).__name__}: {exc}") from exc


def export_spans(endpoint: str, document: Mapping[str, Any]) -> None:
    """POST spans to an OTLP/HTTP collector: `<endpoint>/v1/traces`, JSON encoded."""
    resp = requests.post(f"{endpoint.rstrip('/')}/v1/traces", json=document, timeout=EXPORT_TIMEOUT)
    resp.raise_for_status()
