"""Fixtures for manifest and content-key tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from manifest_tree import BASES, TEAM, Tree


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    """A valid project: images/spark (matrix, Dockerfile, entrypoint) and manifests/data-eng/etl-jobs."""
    t = Tree(tmp_path / "project")
    t.bases(BASES)
    t.write("images/spark/Dockerfile", "ARG BASE\nFROM ${BASE}\n")
    t.write("images/spark/entrypoint.sh", "#!/bin/sh\nexec \"$@\"\n").chmod(0o755)
    t.manifest(TEAM)
    t.write("manifests/data-eng/etl/config.yaml", "regions: [north]\n")
    t.write("manifests/data-eng/smoke/job.py", "print('ok')\n")
    return t
