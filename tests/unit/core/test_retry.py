"""The retry policy on its own: waits, Retry-After, which outcomes are retried, and what stands at the end."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from moka_images.adapters.retry import Policy, retry_after


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


class Script:
    """A callable that raises or returns the next scripted outcome, counting its calls."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes, self.calls = list(outcomes), 0

    def __call__(self) -> object:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def test_waits_double_from_the_first_up_to_the_cap() -> None:
    policy = Policy(attempts=9, first=0.25, cap=8.0)
    assert [policy.delay(n) for n in range(8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert [Policy(attempts=4, first=1.0).delay(n) for n in range(3)] == [1.0, 2.0, 4.0]  # no cap by default


def test_a_wait_the_service_asks_for_wins_over_the_cap() -> None:
    assert Policy(attempts=3, first=0.25, cap=8.0).delay(0, asked=30.0) == 30.0
    assert Policy(attempts=3, first=0.25, cap=8.0).delay(4, asked=0.0) == 0.0


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.5), (0.5, 0.75), (0.999, 0.9995)])
def test_jitter_scales_every_wait_into_half_to_whole(monkeypatch: pytest.MonkeyPatch, draw: float,
                                                     factor: float) -> None:
    monkeypatch.setattr(random, "random", lambda: draw)
    policy = Policy(attempts=5, first=0.25, cap=8.0, jitter=True)
    assert policy.delay(1) == pytest.approx(0.5 * factor)
    assert policy.delay(9) == pytest.approx(8.0 * factor)
    assert policy.delay(0, asked=4.0) == pytest.approx(4.0 * factor)


@pytest.mark.parametrize(("header", "seconds"), [("3", 3.0), ("0", 0.0), ("120", 120.0), (None, None), ("", None),
                                                 ("1.5", None), ("-1", None),
                                                 ("Wed, 21 Oct 2015 07:28:00 GMT", None)])
def test_retry_after_takes_whole_seconds_only(header: str | None, seconds: float | None) -> None:
    assert retry_after(header) == seconds


def test_a_first_success_is_returned_without_waiting(sleeps: list[float]) -> None:
    fn = Script("ok")
    assert Policy(attempts=3, first=1.0).call(fn, retry_error=lambda exc: True) == "ok"
    assert fn.calls == 1 and sleeps == []


def test_retryable_errors_are_retried_until_a_success(sleeps: list[float]) -> None:
    fn = Script(ConnectionError("a"), ConnectionError("b"), "ok")
    assert Policy(attempts=3, first=0.5).call(fn, retry_error=lambda exc: isinstance(exc, ConnectionError)) == "ok"
    assert fn.calls == 3 and sleeps == [0.5, 1.0]


def test_the_last_error_is_raised_when_tries_run_out(sleeps: list[float]) -> None:
    last = ConnectionError("third")
    fn = Script(ConnectionError("first"), ConnectionError("second"), last)
    with pytest.raises(ConnectionError) as raised:
        Policy(attempts=3, first=0.5).call(fn, retry_error=lambda exc: True)
    assert raised.value is last and fn.calls == 3 and sleeps == [0.5, 1.0]


def test_other_errors_are_raised_at_once(sleeps: list[float]) -> None:
    fn = Script(ValueError("a bug"), "never")
    with pytest.raises(ValueError, match="a bug"):
        Policy(attempts=3, first=0.5).call(fn, retry_error=lambda exc: isinstance(exc, ConnectionError))
    assert fn.calls == 1 and sleeps == []


def test_the_last_value_is_returned_when_tries_run_out(sleeps: list[float]) -> None:
    fn = Script(503, 502, 500, 200)
    assert Policy(attempts=3, first=0.5).call(fn, retry_result=lambda status: status >= 500) == 500
    assert fn.calls == 3 and sleeps == [0.5, 1.0]


def test_one_attempt_is_no_retry(sleeps: list[float]) -> None:
    fn = Script(503, 200)
    assert Policy(attempts=1, first=0.5).call(fn, retry_result=lambda status: status >= 500) == 503
    assert fn.calls == 1 and sleeps == []


def test_values_can_ask_for_their_wait(sleeps: list[float]) -> None:
    fn = Script((429, "7"), (503, None), (429, "soon"), (200, None))
    result = Policy(attempts=5, first=0.25, cap=8.0).call(fn, retry_result=lambda r: r[0] != 200,
                                                          asked=lambda r: retry_after(r[1]))
    assert result == (200, None) and sleeps == [7.0, 0.5, 1.0]


def test_retries_are_logged_only_when_asked(warnings: list[tuple[str, dict[str, Any]]]) -> None:
    fn = Script(TimeoutError("slow"), KeyError("gone"), "ok")
    Policy(attempts=3, first=0.5).call(fn, retry_error=lambda exc: True,
                                       warn=lambda exc: f"{exc.__class__.__name__}; retrying")
    assert warnings == [("TimeoutError; retrying", {"attempt": 1}), ("KeyError; retrying", {"attempt": 2})]
    warnings.clear()
    Policy(attempts=3, first=0.5).call(Script(TimeoutError("slow"), "ok"), retry_error=lambda exc: True)
    assert warnings == []


def test_a_retried_value_is_logged_without_an_error(warnings: list[tuple[str, dict[str, Any]]]) -> None:
    Policy(attempts=2, first=0.5).call(Script(1, 0), retry_result=bool,
                                       warn=lambda exc: f"retrying after {exc!r}")
    assert warnings == [("retrying after None", {"attempt": 1})]
