"""A test whose tool or stack is missing skips on a laptop and fails in CI."""

from __future__ import annotations

import pytest
from ci_support import unavailable


def test_in_ci_a_missing_tool_fails_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="strace is not installed .*fix the set-up"):
        unavailable("strace is not installed")


def test_elsewhere_it_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="strace is not installed"):
        unavailable("strace is not installed")
