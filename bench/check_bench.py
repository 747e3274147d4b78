"""Check benchmark: `moka-images check` on a copy of the project with 1,000 team manifests, against its target
(2 s) and against the raw limit of reading and YAML-parsing the same files.

    .venv/bin/python bench/check_bench.py [--manifests 1000] [--teams 50] [--rounds 5]

The copy holds the project's moka.yaml, images/, policies/ and security/, and `--manifests` valid team manifests
spread over `--teams` team folders, each manifest with pins, env, a copied folder and a smoke job like the real
ones. Each round times, in this order:
  - `moka-images check` as a process (what CI and pre-commit run: interpreter, imports, the check);
  - the use case alone, in this process (`stages.checking.check`);
  - the raw limit: read every YAML file the check reads and parse it with libyaml, nothing else;
  - the fixed cost of a process: `moka-images --help` (interpreter and imports, no check).
Prints min and median of each; exits 1 when the median of the process exceeds the target.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moka_images.stages.checking import check

CLI = [sys.executable, "-m", "moka_images.cli"]
TARGET_SECONDS = 2.0
MANIFEST = """\
# Generated for the check benchmark.
name: job-{n:04d}
team: {team}
version: 1.{n}.0
base: spark-{line}
description: Benchmark job {n} of {team}
python:
  packages:
    - pyyaml==6.0.2
    - tabulate==0.9.0
apt:
  packages:
    - tree=2.1.0-1
files:
  - src: conf
    dest: conf-{n}
env:
  JOB_NAME: job-{n:04d}
  JOB_OUTPUT_FORMAT: parquet
smoke:
  job: smoke/job.py
  timeout_seconds: 300
  expect: "job ok"
"""


def make_project(root: Path, manifests: int, teams: int) -> list[Path]:
    """The project's declarations with `manifests` generated team manifests; returns every YAML file check reads."""
    root.mkdir()
    for part in ("moka.yaml", "images", "policies", "security"):
        src = ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / part)
    for t in range(teams):
        folder = root / "manifests" / f"team-{t:03d}"
        (folder / "conf").mkdir(parents=True)
        (folder / "conf" / "settings.yaml").write_text("regions: [north, south]\n")
        (folder / "smoke").mkdir()
        (folder / "smoke" / "job.py").write_text("print('job ok')\n")
    for n in range(manifests):
        team = f"team-{n % teams:03d}"
        text = MANIFEST.format(n=n, team=team, line="3.5" if n % 2 else "4.0")
        (root / "manifests" / team / f"job-{n:04d}.yaml").write_text(text)
    return sorted(p for p in root.rglob("*.yaml") if "conf" not in p.parts)


def raw_parse(files: list[Path]) -> None:
    """The floor: read and parse every file with libyaml, and do nothing with the data."""
    for path in files:
        yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", type=int, default=1000, help="team manifests to generate (default 1000)")
    parser.add_argument("--teams", type=int, default=50, help="team folders they are spread over (default 50)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, at least 3 (default 5)")
    args = parser.parse_args()
    rounds = max(3, args.rounds)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="moka-check-bench-") as tmp:
        root = Path(tmp) / "project"
        files = make_project(root, args.manifests, args.teams)
        today = datetime.now(UTC).date()
        report = check(root, today)
        if report.problems:
            print("\n".join(str(p) for p in report.problems[:10]), file=sys.stderr)
            raise SystemExit("the generated project has problems: the benchmark would time the wrong thing")

        def process() -> None:
            subprocess.run([*CLI, "check", "--root", str(root)], env=env, check=True, stdout=subprocess.DEVNULL)

        def startup() -> None:
            subprocess.run([*CLI, "--help"], env=env, check=True, stdout=subprocess.DEVNULL)

        times: dict[str, list[float]] = {"check (process)": [], "check (use case)": [], "raw read + parse": [],
                                         "process start, no check": []}
        for _ in range(rounds):
            times["check (process)"].append(timed(process))
            times["check (use case)"].append(timed(lambda: check(root, today)))
            times["raw read + parse"].append(timed(lambda: raw_parse(files)))
            times["process start, no check"].append(timed(startup))
    print(f"{args.manifests} team manifests in {args.teams} team folders, {len(files)} YAML files, {rounds} rounds "
          f"(valid: {', '.join(f'{n} {k}' for k, n in report.checked.items())})")
    print(f"{'':26}{'min':>8}{'median':>9}")
    for name, values in times.items():
        print(f"{name:26}{min(values):7.3f}s{statistics.median(values):8.3f}s")
    median = statistics.median(times["check (process)"])
    verdict = "within" if median <= TARGET_SECONDS else "OVER"
    print(f"target: check (process) median <= {TARGET_SECONDS:.1f} s: {verdict} ({median:.3f} s)")
    return 0 if median <= TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
