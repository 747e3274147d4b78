"""A copy of the project's declarations (moka.yaml, images/, manifests/, policies/, security/) to break at will."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("moka.yaml", "images", "manifests", "policies", "security")


def copy_project(root: Path) -> Path:
    """Copy the declarations into `root` (created), leaving bytecode caches out; returns `root`."""
    root.mkdir(parents=True)
    for name in PARTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / name)
    return root


def edit(root: Path, rel: str, old: str, new: str) -> None:
    """Replace the first `old` in one file of the copy (which must hold it)."""
    path = root / rel
    text = path.read_text()
    assert old in text, (rel, old)
    path.write_text(text.replace(old, new, 1))
