"""A small, valid project tree (one Spark matrix, one team image) for manifest and content-key tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

BASES = {
    "name": "spark",
    "description": "Curated Spark runtime",
    "dockerfile": "Dockerfile",
    "lines": [{"line": "3.5", "version": "1.0.0", "spark_version": "3.5.7"},
              {"line": "4.0", "version": "1.0.0", "spark_version": "4.0.1"}],
}
TEAM = {
    "name": "etl-jobs",
    "team": "data-eng",
    "version": "1.0.0",
    "base": "spark-3.5",
    "description": "Nightly ETL jobs",
    "python": {"packages": ["pyyaml==6.0.2"]},
    "apt": {"packages": ["jq=1.6-2.1+deb12u2"]},
    "files": [{"src": "etl", "dest": "etl"}],
    "env": {"ETL_CONFIG": "/opt/app/etl/config.yaml"},
    "smoke": {"job": "smoke/job.py", "timeout_seconds": 60, "expect": "ok"},
}


class Tree:
    """A project root under tmp_path with helpers to write declarations."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, rel: str, text: str | bytes) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return path

    def manifest(self, data: Any, rel: str = "manifests/data-eng/etl-jobs.yaml") -> Path:
        return self.write(rel, yaml.safe_dump(data, sort_keys=False))

    def bases(self, data: Any) -> Path:
        return self.write("images/spark/image.yaml", yaml.safe_dump(data, sort_keys=False))
