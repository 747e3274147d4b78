"""Fixtures shared by the core unit tests."""

from __future__ import annotations

from typing import Any

import pytest

from moka_images import log


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Every `log.warn` as (message, fields), instead of printed."""
    said: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(log, "warn", lambda msg, **fields: said.append((msg, fields)))
    return said
