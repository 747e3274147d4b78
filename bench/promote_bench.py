"""Promotion benchmark: copy a two-platform Spark image from the test registry to the dev registry with the
moka-images copy engine, `skopeo copy --all` and `cosign copy`, in the same run, each into a fresh
repository; then a re-promotion where everything is already there. Prints times and ratios.

    .venv/bin/python bench/promote_bench.py [--image spark-3.5] [--jobs 4]

The source is moka/<image>:latest in test (built by `moka-images build`); without it, a two-platform image
of random layers (~640 MB) is pushed to stand in. When the source is signed, scanned and smoke-attested, the
whole `moka-images promote --confirm` (gates, copy, signing, record, tags) is timed too, first and again.
Every step has a time limit, so the benchmark always ends.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # promote_support: the stand-in image

from promote_support import push_image

from moka_images.adapters import run
from moka_images.adapters.copy import CopyStats, TagSet, copy_image, set_tags, walk
from moka_images.config.settings import Settings, load_settings
from moka_images.models import Digest, Environment, ImageRef
from moka_images.plan.graph import BuildTag
from moka_images.stages import registries
from moka_images.stages.verify import signing

TEST, DEV = Environment.TEST, Environment.DEV
LIMIT = 1200.0  # seconds, per step


def timed(label: str, fn: Callable[[], object]) -> tuple[float, object]:
    print(f"… {label}", file=sys.stderr, flush=True)
    start = time.monotonic()
    result = fn()
    return time.monotonic() - start, result


def source_image(settings: Settings, image: str) -> tuple[str, Digest, list[str]]:
    """moka/<image>:latest in test with its build tags, or a stand-in pushed once."""
    test = registries.client(settings, TEST)
    repository = settings.repository(image)
    digest = test.head_manifest(repository, "latest")
    if digest is not None:
        builds = [t for t in test.list_tags(repository) if BuildTag.parse(t) and test.head_manifest(repository, t)
                  == digest]
        return repository, digest, builds
    repository = "bench-promote/stand-in"
    print(f"{settings.repository(image)} is not in test: pushing a stand-in to {repository}", file=sys.stderr)
    pushed = push_image(test, repository, "1.0.0", seed=f"bench-{time.time()}", big_layers=8, layer_mb=40)
    return repository, pushed.digest, [str(pushed.build)]


def auth_file(settings: Settings, directory: Path) -> Path:
    """The test and dev logins (`moka-images dev env`'s credentials) in a file skopeo reads, not on its command line."""
    auths = {}
    for env in (TEST, DEV):
        creds = registries.credentials(settings, env)
        token = f"{creds.username}:{creds.password}".encode()
        auths[settings.env(env).registry] = {"auth": base64.b64encode(token).decode()}
    path = directory / "auth.json"
    path.write_text(json.dumps({"auths": auths}))
    path.chmod(0o600)
    return path


def moka_copy(settings: Settings, src_repo: str, dst_repo: str, digest: Digest, tags: list[str],
              jobs: int) -> CopyStats:
    src, dst = registries.client(settings, TEST), registries.client(settings, DEV)
    stats = copy_image(src, src_repo, dst, dst_repo, digest, workers=jobs)
    set_tags(dst, dst_repo, digest, [TagSet(t, dst.head_manifest(dst_repo, t)) for t in tags])
    return stats


def ready(settings: Settings, repository: str, digest: Digest) -> bool:
    """Whether the source carries a signature by test's key (the gates' first question)."""
    return signing.verify_signature(settings, TEST, ImageRef(settings.env(TEST).registry, repository,
                                                             digest=digest)).ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="spark-3.5", help="image in test to promote (default spark-3.5)")
    parser.add_argument("--jobs", type=int, default=4, help="blobs copied at once by moka-images (default 4)")
    args = parser.parse_args()
    settings = load_settings()
    registries.login_tools(settings, TEST)
    registries.login_tools(settings, DEV)
    src_repo, digest, builds = source_image(settings, args.image)
    test, dev = registries.client(settings, TEST), registries.client(settings, DEV)
    manifests = walk(test, src_repo, digest)
    sizes = {d["digest"]: d["size"] for m in manifests if not m.is_index
             for d in [m.json["config"], *m.json.get("layers", [])]}
    platforms = len(manifests[-1].platforms()) if manifests[-1].is_index else 1
    run_id = f"{int(time.time())}"
    target = f"bench-promote/{run_id}"
    tag = builds[0] if builds else "bench"
    src_ref = f"{settings.env(TEST).registry}/{src_repo}@{digest}"
    print(f"source {src_ref}: {platforms} platforms, {len(sizes)} blobs, {sum(sizes.values()) / 1e6:.0f} MB",
          file=sys.stderr)
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="moka-bench-") as tmp:
        seconds, stats = timed("moka-images copy engine", lambda: moka_copy(
            settings, src_repo, f"{target}/moka", digest, [tag, "latest"], args.jobs))
        rows.append(("moka-images copy (blobs, manifests, signatures, tags)", seconds))
        assert dev.head_manifest(f"{target}/moka", "latest") == digest
        seconds, again = timed("moka-images copy again", lambda: moka_copy(
            settings, src_repo, f"{target}/moka", digest, [tag, "latest"], args.jobs))
        assert isinstance(again, CopyStats) and not again.changed
        rows.append(("moka-images re-copy, everything there", seconds))
        auth = auth_file(settings, Path(tmp))
        seconds, _ = timed("skopeo copy --all", lambda: run.call(
            ["skopeo", "copy", "--all", "--preserve-digests", "--authfile", str(auth), "--src-tls-verify=false",
             "--dest-tls-verify=false", f"docker://{src_ref}",
             f"docker://{settings.env(DEV).registry}/{target}/skopeo:{tag}"], timeout=LIMIT, quiet=True))
        rows.append(("skopeo copy --all (image only)", seconds))
        assert dev.head_manifest(f"{target}/skopeo", tag) == digest
        seconds, _ = timed("cosign copy", lambda: run.call(
            ["cosign", "copy", "--force", "--allow-http-registry", "--allow-insecure-registry", src_ref,
             f"{settings.env(DEV).registry}/{target}/cosign:{tag}"], timeout=LIMIT, quiet=True))
        rows.append(("cosign copy (image, signatures, attestations)", seconds))
        assert dev.head_manifest(f"{target}/cosign", tag) == digest
    if ready(settings, src_repo, digest) and builds and src_repo == settings.repository(args.image):
        prefix = f"bench-promote-{run_id}"
        own = settings.model_copy(update={"repository_prefix": prefix})
        repository = own.repository(args.image)
        copy_image(test, src_repo, test, repository, digest)  # same registry: mounts, as a new build would sit
        set_tags(test, repository, digest, [TagSet(builds[0], None), TagSet("latest", None)])
        env = {**os.environ, "MOKA_REPOSITORY_PREFIX": prefix}
        cli = [sys.executable, "-m", "moka_images.cli", "promote", f"{args.image}:{builds[0]}", "--to", "dev",
               "--confirm", "--jobs", str(args.jobs)]
        for label in ("moka-images promote (gates, copy, sign, record, tags)",
                      "moka-images re-promotion, everything there (gates, no-op)"):
            seconds, _ = timed(label, lambda: subprocess.run(cli, env=env, check=True, timeout=LIMIT,
                                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            rows.append((label, seconds))
    else:
        print("source is not signed in test (or is a stand-in): the full `promote` with gates is not timed",
              file=sys.stderr)
    base = rows[0][1]
    print(f"{'':56} {'seconds':>9} {'vs moka copy':>13}")
    for label, seconds in rows:
        print(f"{label:56} {seconds:9.2f} {seconds / base:12.2f}x")
    skopeo, cosign_s = dict(rows)["skopeo copy --all (image only)"], dict(rows)[
        "cosign copy (image, signatures, attestations)"]
    print(f"skopeo takes {skopeo / base:.2f}x as long as moka-images, cosign {cosign_s / base:.2f}x; a re-copy "
          f"takes {rows[1][1] / base:.3f} of a copy ({stats.bytes_copied / 1e6:.0f} MB moved by the first)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
