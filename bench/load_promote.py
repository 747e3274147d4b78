"""Load test: promote 50 images at once from test to dev through the local stack, and report throughput.

    .venv/bin/python bench/load_promote.py [--images 50] [--parallel 10] [--layer-kb 512] [--limit 1800]

Setup (not timed): N distinct two-platform images are pushed to the test registry straight through the
registry API (per platform one Debian-looking layer carrying --layer-kb of random bytes, under an index,
tagged like a build), then each is signed with test's key and given a passing smoke attestation, as the
pipeline leaves an image. Measured:

1. the whole promotion, `promote.promote` as `moka-images promote --confirm` runs it, for all N at once on
   --parallel threads: signature, scan (trivy per platform) and smoke gates, copy by digest, signing and
   attesting in dev, tag moves and the history record;
2. the copy engine alone on the same images (copy by digest, signatures and attestations along, then the
   tags), into separate repositories: the data plane without the gates' cosign and trivy processes.

Reported for each: images/s, MB/s (bytes the copy moved), the slowest promotion and p50/p95. Only loopback
registries; every wait has a limit, so the run ends by itself (exit 2 past --limit, 1 on any failure).
The summary lines go to stderr, the JSON report to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # promote_support: images pushed through the registry API

from promote_support import Pushed, push_image, ready_in_test

from moka_images.adapters.copy import TagSet, copy_image, set_tags
from moka_images.adapters.registry import is_local
from moka_images.config.settings import Settings, load_settings
from moka_images.models import Environment
from moka_images.plan.graph import rolling_tags
from moka_images.stages import keys, registries
from moka_images.stages.promote.apply import promote

TEST, DEV = Environment.TEST, Environment.DEV


@dataclass(frozen=True)
class Result:
    """One image's run: seconds and bytes the copy moved."""

    name: str
    seconds: float
    bytes_copied: int


def run_all(label: str, items: list[Pushed], job: Callable[[Pushed], Result], parallel: int,
            deadline: float) -> tuple[float, list[Result]]:
    """Run `job` on every item, `parallel` at a time; the wall time and each result. Exits past the deadline."""
    print(f"… {label}: {len(items)} images, {parallel} at a time", file=sys.stderr, flush=True)
    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="load")
    start = time.monotonic()
    futures = [pool.submit(job, item) for item in items]
    done, pending = wait(futures, timeout=max(1.0, deadline - time.monotonic()), return_when=FIRST_EXCEPTION)
    failed = [f for f in done if f.exception() is not None]
    if failed or pending:
        why = f"{failed[0].exception()!r}" if failed else f"{len(pending)} still running at the time limit"
        print(f"{label} did not finish: {why}", file=sys.stderr, flush=True)
        os._exit(1 if failed else 2)  # worker threads cannot be stopped; the run must end anyway
    wall = time.monotonic() - start
    pool.shutdown()
    return wall, [f.result() for f in futures]


def summary(label: str, wall: float, results: list[Result]) -> dict[str, object]:
    times = sorted(r.seconds for r in results)
    slowest = max(results, key=lambda r: r.seconds)
    moved = sum(r.bytes_copied for r in results)
    doc = {"phase": label, "images": len(results), "wall_seconds": round(wall, 2),
           "images_per_second": round(len(results) / wall, 2), "mb_copied": round(moved / 1e6, 1),
           "mb_per_second": round(moved / 1e6 / wall, 2),
           "slowest": {"image": slowest.name, "seconds": round(slowest.seconds, 2)},
           "p50_seconds": round(statistics.median(times), 2),
           "p95_seconds": round(times[max(0, int(len(times) * 0.95) - 1)], 2)}
    print(f"{label}: {doc['images']} images in {doc['wall_seconds']}s = {doc['images_per_second']} images/s, "
          f"{doc['mb_copied']} MB at {doc['mb_per_second']} MB/s; slowest {slowest.name} {slowest.seconds:.1f}s; "
          f"p50 {doc['p50_seconds']}s p95 {doc['p95_seconds']}s", file=sys.stderr)
    return doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=10, help="promotions running at once")
    parser.add_argument("--layer-kb", type=int, default=512, help="random bytes in each platform's layer, KiB")
    parser.add_argument("--limit", type=float, default=1800.0, help="seconds for the whole run")
    args = parser.parse_args()
    deadline = time.monotonic() + args.limit
    run_id = uuid.uuid4().hex[:8]
    settings: Settings = load_settings(profile="local").model_copy(
        update={"repository_prefix": f"bench-load-{run_id}"})
    if not all(is_local(settings.env(e).registry) for e in (TEST, DEV)):
        raise SystemExit("the load test runs against the local stack only")
    keys.ensure_keys(settings)
    test = registries.client(settings, TEST)
    names = [f"img-{i:03d}" for i in range(args.images)]

    def prepare(name: str) -> Pushed:
        image = push_image(test, settings.repository(name), "1.0.0", seed=f"{run_id}-{name}",
                           extra={"data/payload.bin": os.urandom(args.layer_kb * 1024)})
        ready_in_test(settings, image)
        return image

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        images = list(pool.map(prepare, names, timeout=max(1.0, deadline - time.monotonic())))
    print(f"setup: {len(images)} images pushed, signed and attested in test in {time.monotonic() - t0:.1f}s",
          file=sys.stderr)

    def full(image: Pushed) -> Result:
        start = time.monotonic()
        done = promote(settings, f"{image.repository.removeprefix(settings.repository_prefix + '/')}:1.0.0",
                               DEV, by="bench/load_promote")
        return Result(image.repository, time.monotonic() - start, done.copy.bytes_copied if done.copy else 0)

    dev = registries.client(settings, DEV)

    def copy_only(image: Pushed) -> Result:
        start = time.monotonic()
        src = registries.client(settings, TEST)
        stats = copy_image(src, image.repository, dev, image.repository + "-copy", image.digest, workers=4)
        set_tags(dev, image.repository + "-copy", image.digest,
                 [TagSet(t, None) for t in (str(image.build), *rolling_tags(image.version))])
        return Result(image.repository, time.monotonic() - start, stats.bytes_copied)

    report = [summary("promote (gates, copy, sign, attest, tags)",
                      *run_all("promote", images, full, args.parallel, deadline)),
              summary("copy engine only", *run_all("copy", images, copy_only, args.parallel, deadline))]
    wrong = [i.repository for i in images if dev.head_manifest(i.repository, "latest") != i.digest]
    print(json.dumps({"prefix": settings.repository_prefix, "parallel": args.parallel, "layer_kb": args.layer_kb,
                      "phases": report, "mismatched": wrong}, indent=2))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
