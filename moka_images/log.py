"""Step output: timings, progress on long work, CI annotations. Library code logs here, never print()s."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from moka_images import metrics

_console = Console(stderr=True, highlight=False, soft_wrap=True)
_json = os.environ.get("MOKA_LOG_FORMAT", "text") == "json"
_in_ci = os.environ.get("CI") == "true"


def set_format(fmt: str) -> None:
    """Switch between human text and one JSON object a line (`--log-format json`)."""
    global _json
    _json = fmt == "json"


def _emit(level: str, msg: str, **fields: Any) -> None:
    if _json:
        sys.stderr.write(json.dumps({"ts": round(time.time(), 3), "level": level, "msg": msg, **fields}) + "\n")
        return
    style = {"info": "", "warn": "yellow", "error": "bold red", "step": "bold cyan", "done": "green"}[level]
    extra = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
    _console.print(f"[{style}]{msg}[/]" + (f" [dim]{extra}[/]" if extra else "") if style else msg + (f" {extra}" if extra else ""))


def info(msg: str, **fields: Any) -> None:
    """Say something worth knowing."""
    _emit("info", msg, **fields)


def warn(msg: str, **fields: Any) -> None:
    """Something is off but work goes on; in CI also a GitHub annotation."""
    if _in_ci and not _json:
        sys.stderr.write(f"::warning::{msg}\n")
    _emit("warn", msg, **fields)


def error(msg: str, **fields: Any) -> None:
    """Report a failure (the CLI uses this for MokaError)."""
    if _in_ci and not _json:
        sys.stderr.write(f"::error::{msg.splitlines()[0] if msg else msg}\n")
    _emit("error", msg, **fields)


@contextmanager
def step(name: str, **fields: Any) -> Iterator[None]:
    """Time a named step and say when it starts and ends; it is also a span and a duration metric."""
    _emit("step", f"▶ {name}", **fields)
    start = time.monotonic()
    with metrics.span(name, **fields):
        try:
            yield
        except BaseException:
            _emit("error", f"✗ {name}", seconds=round(time.monotonic() - start, 1))
            raise
        _emit("done", f"✓ {name}", seconds=round(time.monotonic() - start, 1))


def console() -> Console:
    """The shared stderr console, for progress bars and tables."""
    return _console
