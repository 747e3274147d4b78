"""A copy of the project to break, for the check and up-front validation tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from project_copy import copy_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's declarations."""
    return copy_project(tmp_path / "project")

