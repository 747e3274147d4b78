"""Build benchmark: a full build, a rebuild with nothing changed, and a rebuild with one team image changed,
measured in the same run against the same local stack, printed as times and ratios.

    .venv/bin/python bench/build_bench.py [--cold]

Every run uses a fresh repository prefix, so the full build really builds every image into the test registry;
`--cold` also empties the engine's build cache first (a from-scratch build, slow: the arm64 half runs under qemu).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "moka_images.cli"]


def timed_build(root: Path, prefix: str) -> float:
    env = {**os.environ, "MOKA_ROOT": str(root), "MOKA_REPOSITORY_PREFIX": prefix}
    start = time.monotonic()
    subprocess.run([*CLI, "build", "--json"], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="empty the engine's build cache before the full build")
    args = parser.parse_args()
    prefix = f"bench-{int(time.time())}"
    with tempfile.TemporaryDirectory(prefix="moka-bench-") as tmp:
        tree = Path(tmp)
        for part in ("images", "manifests", "moka.yaml"):
            src = ROOT / part
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, tree / part)
        if args.cold:
            subprocess.run(["docker", "builder", "prune", "-af"], check=True, stdout=subprocess.DEVNULL)
        full = timed_build(tree, prefix)
        nothing = timed_build(tree, prefix)
        job = tree / "manifests" / "data-eng" / "etl" / "config.yaml"
        job.write_text(job.read_text() + f"\n# bench {prefix}\n")
        manifest = tree / "manifests" / "data-eng" / "etl-jobs.yaml"
        text = manifest.read_text()
        version = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("version:"))
        major, minor, patch = version.split(".")
        manifest.write_text(text.replace(f"version: {version}", f"version: {major}.{minor}.{int(patch) + 1}"))
        one = timed_build(tree, prefix)
    print(f"full build ({'cold' if args.cold else 'warm engine cache'}): {full:8.1f} s")
    print(f"no change rebuild:                  {nothing:8.1f} s   ratio to full {nothing / full:6.3f}")
    print(f"one team image changed:             {one:8.1f} s   ratio to full {one / full:6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
