"""The one retry policy for calls that meet a busy or failing service (registries, cosign against a registry).

Built on tenacity; a `Policy` says how many tries and how long to wait, the caller says which outcomes are
worth another try. When the tries run out the last outcome stands: its value is returned or its exception
raised, so callers keep their own errors for a service that stays down.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import tenacity

from moka_images import log

T = TypeVar("T")


def _never(_: Any) -> bool:
    return False


def _outcome(state: tenacity.RetryCallState) -> tenacity.Future:
    # tenacity has the attempt's outcome by the time it asks for a wait, a log line or the final answer.
    return cast(tenacity.Future, state.outcome)


def retry_after(header: str | None) -> float | None:
    """The wait a Retry-After header asks for, in its delta-seconds form; None without one (or for a date)."""
    return float(header) if header and header.isdigit() else None


@dataclass(frozen=True)
class Policy:
    """`attempts` tries in all; waits of `first` seconds, doubling, at most `cap`.

    With `jitter` every wait (a Retry-After one too) is scaled by a random factor in [0.5, 1), so clients
    throttled together do not all come back at once.
    """

    attempts: int
    first: float
    cap: float = math.inf
    jitter: bool = False

    def delay(self, retry: int, asked: float | None = None) -> float:
        """The wait before retry number `retry` (0 for the first); `asked` is what the service asked for."""
        wait = asked if asked is not None else min(self.cap, self.first * 2**retry)
        return wait * (0.5 + random.random() / 2) if self.jitter else wait

    def call(self, fn: Callable[[], T], *,
             retry_error: Callable[[BaseException], bool] = _never,
             retry_result: Callable[[T], bool] = _never,
             asked: Callable[[T], float | None] | None = None,
             warn: Callable[[BaseException | None], str] | None = None) -> T:
        """Call `fn` until its outcome is not worth another try, or the tries run out.

        `retry_error` and `retry_result` pick the exceptions and values to retry (anything else is raised or
        returned at once); `asked` reads the wait a retried value asks for (a Retry-After header); `warn`
        says, for the log, why an attempt is retried (retries are silent without it).
        """

        def wait(state: tenacity.RetryCallState) -> float:
            outcome = _outcome(state)
            hint = asked(outcome.result()) if asked and not outcome.failed else None
            return self.delay(state.attempt_number - 1, hint)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if warn is not None:
                log.warn(warn(_outcome(state).exception()), attempt=state.attempt_number)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=wait,
            retry=tenacity.retry_if_exception(retry_error) | tenacity.retry_if_result(retry_result),
            before_sleep=before_sleep,
            retry_error_callback=lambda state: _outcome(state).result(),
        )
        return retrying(fn)
