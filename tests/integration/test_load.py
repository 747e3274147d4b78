"""The load test in CI: 50 images promoted at once through the local stack, throughput and slowest reported.

Runs bench/load_promote.py as a user would (its own process, its own repositories), then checks what it reports:
every image promoted to dev at its own digest, and the numbers a reader needs. The numbers are printed, not
judged against a threshold: a shared 2-core runner's speed is not the product's.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from moka_images.config.settings import Settings

pytestmark = pytest.mark.integration

IMAGES = 50


def test_fifty_promotions_at_once_all_land_and_report_throughput(stack: Settings) -> None:
    done = subprocess.run([sys.executable, str(stack.root / "bench" / "load_promote.py"), "--images", str(IMAGES),
                           "--parallel", str(IMAGES), "--limit", "900"], capture_output=True, text=True, timeout=1000, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout)
    assert report["mismatched"] == []
    phases = {p["phase"].split(" ")[0]: p for p in report["phases"]}
    assert set(phases) == {"promote", "copy"}
    for phase in phases.values():
        assert phase["images"] == IMAGES and phase["images_per_second"] > 0
        assert phase["slowest"]["seconds"] >= phase["p95_seconds"] >= phase["p50_seconds"] > 0
    assert phases["promote"]["mb_copied"] > 0
    print("\n" + "\n".join(line for line in done.stderr.splitlines()
                           if line.startswith(("setup:", "promote", "copy engine"))))
