"""What git knows about the checkout: the paths changed since a revision."""

from __future__ import annotations

from pathlib import Path

from moka_images.adapters import run
from moka_images.errors import ConfigError


def changed_paths(root: Path, rev: str) -> list[str]:
    """Paths (relative to `root`) changed since `rev`: committed, staged, unstaged and untracked."""
    if not rev or rev.startswith("-"):
        raise ConfigError(f"`{rev}` is not a revision", "give a commit, branch or tag, e.g. origin/main")
    hint = f"is `{rev}` a revision of this repository? (a shallow CI clone may need a deeper fetch)"
    diff = run.call(["git", "-C", str(root), "diff", "--relative", "--name-only", rev, "--"], quiet=True, hint=hint)
    new = run.call(["git", "-C", str(root), "ls-files", "--others", "--exclude-standard"], quiet=True)
    return sorted({line for line in (diff.stdout + new.stdout).splitlines() if line})


def head_revision(root: Path) -> str:
    """The checked-out commit, with `-dirty` when the tree has uncommitted changes; `unknown` outside git."""
    done = run.call(["git", "-C", str(root), "rev-parse", "HEAD"], check=False, quiet=True)
    if done.returncode != 0:
        return "unknown"
    dirty = run.call(["git", "-C", str(root), "status", "--porcelain"], check=False, quiet=True).stdout.strip()
    return done.stdout.strip() + ("-dirty" if dirty else "")
