"""What a test does when something it needs is missing: skip on a developer's machine, fail in CI.

CI's bootstrap installs every tool and starts the stack, so a missing one there is a broken set-up, never a
reason to pass quietly.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI installs and starts everything the tests need: fix the set-up)")
    pytest.skip(reason)
