"""Fleet benchmark: promotion, gates and status at fleet speed, each against the tools a release engineer would
otherwise use, in one run, into fresh repositories, with the raw limit of copying the same blob files beside.

    .venv/bin/python bench/fleet_bench.py [--rows copy,empty,promote,status,team,load] [--rounds 3]
        [--image spark-3.5] [--synthetic 500] [--load-images 50] [--jobs 4] [--limit 1200]

Rows (ratio = moka-images / baseline, below 1 is faster; each row says its target):
  copy     copy a two-platform image (moka/<image>:latest in test, else a stand-in) into a fresh repository Q of
           dev, whose registry already holds every layer in another fresh repository P (P is filled by `skopeo
           copy` before each round, untimed, so skopeo's blob-info cache knows P and it can mount from it):
           moka-images' copy engine (`copy_image` + `set_tags`) vs `skopeo copy --all --preserve-digests` vs
           `cosign copy`. Target: moka <= 1.2x skopeo.
  empty    the same copy into a registry that holds none of the blobs: a docker-registry started by this
           benchmark per side and round on a free loopback port with its own storage on the stack's disk, removed
           afterwards. Target: moka <= 1.0x skopeo.
  promote  the whole `moka-images promote IMAGE:BUILD --to dev --confirm` (a process, under its own fresh
           MOKA_REPOSITORY_PREFIX, the source copied into that prefix in test first) vs a shell script doing the
           same by hand: cosign verify, cosign verify-attestation (scan, smoke), skopeo copy --all, cosign copy
           --only=sig,att, cosign sign, cosign attest (promotion record), and the rolling tags through the
           registry API with curl. Target: moka <= 1.0x script. Needs the image signed, scanned and smoke-
           attested in test (what `scripts/run-local.sh` leaves).
  status   `moka-images status --json` (a process) for the declared images, and for --synthetic N tiny signed
           images in all four environments (pushed and signed with `cosign sign` in setup, untimed), with the
           subprocesses each run starts counted through `strace -f -e trace=execve`. Targets: declared <= 1 s,
           500 x 4 <= 10 s, no subprocess per image.
  team     a team image promoted dev -> staging right after its base, under a fresh prefix: bytes the copy
           moved (`promote --json`, copy.bytes_copied) vs the size of the team image's own layers (the layers
           its base does not have). Target: <= 1.1x. Needs a team image and its base in dev.
  load     --load-images images sharing the real base's layers (base + one small layer of their own per
           platform, signed, scan- and smoke-attested in test in setup) promoted to dev at once with
           `promote.promote` on 10 threads. Target: >= 4 images/s.
Raw limit (rows copy and empty): `cp` of the image's blob files out of the test registry's storage to a
directory on the same disk, then `sync` (the source files are likely in the page cache: this is a floor for a
full copy, not a cold read).

Every round rotates the order of the sides; min and median are printed, ratios of medians and of minima, and a
Markdown table with the machine at the end (stdout; progress goes to stderr). Every step has a time limit
(--limit seconds), so the run always ends. Only 127.0.0.1 is contacted; everything written lives under
repositories and prefixes named `bench-fleet-<run id>...`, nothing else is touched or deleted.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform as platform_mod
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # promote_support: stand-in and synthetic images through the registry API

from promote_support import Pushed, push_image, ready_in_test, tar_layer

from moka_images.adapters import run
from moka_images.adapters.blob_cache import BlobLocations
from moka_images.adapters.copy import CopyStats, TagSet, blobs_of, copy_image, set_tags, walk
from moka_images.adapters.registry import RegistryClient, digest_of, is_local
from moka_images.config.manifests import load_declarations
from moka_images.config.settings import Settings, load_settings
from moka_images.models import PROMOTION_TYPE, SCAN_TYPE, SMOKE_TYPE, Digest, Environment, ImageRef, Platform
from moka_images.plan.graph import BuildTag, rolling_tags
from moka_images.stages import keys, registries
from moka_images.stages.promote.apply import blob_cache_path, promote
from moka_images.stages.status import CELLS_AT_ONCE
from moka_images.stages.verify import attestations, signing
from moka_images.stages.verify import scan as scan_stage
from moka_images.stages.verify.attestations import AttestationKind

TEST, DEV, STAGING = Environment.TEST, Environment.DEV, Environment.STAGING
ALL_ROWS = ("copy", "empty", "promote", "status", "team", "load")
CLI = [sys.executable, "-m", "moka_images.cli"]
LIMIT = 1200.0  # seconds per step unless --limit says otherwise
MOKA = "moka-images"
DISK_MARGIN = 10 * 10**9  # bytes left free on the stack's disk for everyone else


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- harness -------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One row of the table: seconds per side (the first side is moka-images), notes, or why it was skipped."""

    key: str
    title: str
    target: str
    sides: list[str] = field(default_factory=list)
    seconds: dict[str, list[float]] = field(default_factory=dict)
    facts: list[str] = field(default_factory=list)  # lines printed under the row (bytes, counts, verdicts)
    cells: list[tuple[str, str]] = field(default_factory=list)  # extra (measure, value) lines for the table
    skipped: str | None = None
    failures: dict[str, list[str]] = field(default_factory=dict)  # side -> why each failed round failed

    def _side(self, side: str) -> None:
        if side not in self.sides:
            self.sides.append(side)
        self.seconds.setdefault(side, [])

    def add(self, side: str, seconds: float) -> None:
        self._side(side)
        self.seconds[side].append(seconds)

    def fail(self, side: str, exc: Exception) -> None:
        """A baseline (or moka-images) that failed a round: reported, kept out of min, median and ratios."""
        self._side(side)
        lines = str(exc).splitlines()
        why = next((ln for ln in reversed(lines) if ln.lower().startswith(("error", "fatal"))), lines[-1] if lines
                   else repr(exc))
        self.failures.setdefault(side, []).append(why.strip()[:300])
        say(f"  {side} failed: {why.strip()[:300]}")


def attempt(row: Row, side: str, label: str, fn: Callable[[], Any], limit: float) -> None:
    """Time one side of one round into `row`, or record that it failed."""
    try:
        seconds, _ = timed(label, fn, limit)
    except RuntimeError as exc:
        row.fail(side, exc)
        return
    row.add(side, seconds)


def rotated(items: Sequence[str], round_no: int) -> list[str]:
    """The sides in this round's order: each round starts one further along."""
    k = round_no % len(items)
    return [*items[k:], *items[:k]]


def limited(label: str, fn: Callable[[], Any], limit: float) -> Any:
    """Run `fn` with a time limit; past it the whole benchmark ends (threads cannot be stopped)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"bench-{label}", daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        say(f"{label}: still running after {limit:.0f}s, the step's limit; the benchmark stops here")
        sys.stdout.flush()
        os._exit(2)
    if "error" in box:
        raise box["error"]
    return box.get("value")


def timed(label: str, fn: Callable[[], Any], limit: float) -> tuple[float, Any]:
    say(f"… {label}")
    start = time.monotonic()
    value = limited(label, fn, limit)
    seconds = time.monotonic() - start
    say(f"  {seconds:.2f}s")
    return seconds, value


def sh(argv: Sequence[str], env: dict[str, str], limit: float, *, stdout: Any = subprocess.DEVNULL,
       cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A process with a time limit; its stderr's tail in the error when it fails."""
    try:
        done = subprocess.run(list(argv), env=env, timeout=limit, stdout=stdout, stderr=subprocess.PIPE,
                              text=True, cwd=cwd, check=False)
    except subprocess.TimeoutExpired:
        say(f"{argv[0]} {' '.join(argv[1:3])}: still running after {limit:.0f}s, the step's limit; stopping")
        sys.stdout.flush()
        os._exit(2)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-12:])
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {done.returncode}:\n{tail}")
    return done


def stats_line(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


# ---- the world -----------------------------------------------------------------------------------------


@dataclass
class World:
    """Settings, clients, the source image and the files the tools need, for one run."""

    settings: Settings
    run_id: str
    tmp: Path
    env: dict[str, str]  # for every child process: tools on PATH, this checkout on PYTHONPATH
    auth: Path  # skopeo's auth file (every environment's login)
    limit: float
    jobs: int
    image: str = ""
    src_repo: str = ""
    digest: Digest = field(default_factory=lambda: Digest("sha256:" + "0" * 64))
    build: str = ""
    real: bool = False  # the declared image itself (signed, attested), not a stand-in
    media_type: str = ""
    blob_sizes: dict[Digest, int] = field(default_factory=dict)

    def client(self, env: Environment) -> RegistryClient:
        return registries.client(self.settings, env)

    def registry(self, env: Environment) -> str:
        return self.settings.env(env).registry

    @property
    def total_bytes(self) -> int:
        return sum(self.blob_sizes.values())


def make_world(args: argparse.Namespace, tmp: Path) -> World:
    settings = load_settings(profile="local")
    if not all(is_local(settings.env(e).registry) for e in Environment):
        raise SystemExit("the fleet benchmark runs against the local stack only")
    keys.ensure_keys(settings)
    auths = {}
    for e in Environment:
        registries.login_tools(settings, e)  # cosign reads the logins from the docker config
        creds = registries.credentials(settings, e)
        auths[settings.env(e).registry] = {
            "auth": base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()}
    auth = tmp / "auth.json"
    auth.write_text(json.dumps({"auths": auths}))
    auth.chmod(0o600)
    child_env = {**os.environ, "PYTHONPATH": str(ROOT),
                 "PATH": os.pathsep.join([*run.tool_dirs(), os.environ.get("PATH", "")])}
    return World(settings, uuid.uuid4().hex[:8], tmp, child_env, auth, args.limit, args.jobs)


def find_source(world: World, image: str, stand_in_layers: int = 8) -> None:
    """moka/<image>:latest in test with its build tag, or a stand-in of random layers pushed once."""
    test = world.client(TEST)
    repository = world.settings.repository(image)
    digest = test.head_manifest(repository, "latest")
    world.image = image
    if digest is not None:
        builds = [t for t in test.list_tags(repository)
                  if BuildTag.parse(t) and test.head_manifest(repository, t) == digest]
        world.src_repo, world.digest, world.real = repository, digest, True
        world.build = builds[0] if builds else "bench"
    else:
        world.src_repo = f"bench-fleet-{world.run_id}/stand-in"
        say(f"{repository}:latest is not in test: pushing a stand-in ({stand_in_layers} x 40 MB per platform) "
            f"to {world.src_repo}")
        pushed = limited("stand-in", lambda: push_image(test, world.src_repo, "1.0.0", seed=f"fleet-{world.run_id}",
                                                        big_layers=stand_in_layers, layer_mb=40), world.limit)
        world.digest, world.build = pushed.digest, str(pushed.build)
    manifests = walk(test, world.src_repo, world.digest)
    world.media_type = manifests[-1].media_type
    world.blob_sizes = {b.digest: b.size for b in blobs_of(manifests)}
    platforms = len(manifests[-1].platforms()) if manifests[-1].is_index else 1
    say(f"source {world.registry(TEST)}/{world.src_repo}@{world.digest}: {platforms} platforms, "
        f"{len(world.blob_sizes)} blobs, {world.total_bytes / 1e6:.0f} MB ({'declared image' if world.real else 'stand-in'})")


def storage_root(settings: Settings, name: str) -> Path:
    """Where the stack's registry `name` keeps its data (its config's rootdirectory)."""
    config = settings.home / "registries" / name / "config.yml"
    if config.is_file():
        for line in config.read_text().splitlines():
            if line.strip().startswith("rootdirectory:"):
                return Path(line.split(":", 1)[1].strip())
    return settings.home / "registries" / name / "data"


def raw_limit(world: World) -> float | None:
    """Seconds to `cp` the source's blob files to a directory on the same disk and `sync`; None if unreadable."""
    blobs = storage_root(world.settings, "test") / "docker" / "registry" / "v2" / "blobs" / "sha256"
    files = [f"{d.hex[:2]}/{d.hex}/data" for d in world.blob_sizes]
    if not all((blobs / f).is_file() for f in files):
        say(f"raw limit: the blob files are not under {blobs}; not measured")
        return None
    dest = world.settings.home / f"bench-fleet-{world.run_id}-raw"
    try:
        dest.mkdir()
        seconds, _ = timed("raw limit: cp blob files + sync",
                           lambda: sh(["sh", "-c", 'cp --parents "$@" "$DEST" && sync', "cp", *files],
                                      {**world.env, "DEST": str(dest)}, world.limit, cwd=blobs), world.limit)
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    return seconds


# ---- copy sides ----------------------------------------------------------------------------------------


def moka_copy(world: World, dst: RegistryClient, dst_repo: str) -> CopyStats:
    """The copy engine as a promotion drives it: with this machine's blob-location cache (what `land` passes)."""
    with BlobLocations(blob_cache_path(world.settings)) as cache:
        stats = copy_image(world.client(TEST), world.src_repo, dst, dst_repo, world.digest, workers=world.jobs,
                           cache=cache)
    set_tags(dst, dst_repo, world.digest, [TagSet(t, dst.head_manifest(dst_repo, t)) for t in (world.build, "latest")])
    say(f"  moka: {stats.blobs_copied} copied ({stats.bytes_copied / 1e6:.0f} MB), {stats.blobs_mounted} mounted, "
        f"{stats.blobs_present} present")
    return stats


def skopeo_copy(world: World, registry: str, dst_repo: str) -> None:
    sh(["skopeo", "copy", "--all", "--preserve-digests", "--authfile", str(world.auth), "--src-tls-verify=false",
        "--dest-tls-verify=false", f"docker://{world.registry(TEST)}/{world.src_repo}@{world.digest}",
        f"docker://{registry}/{dst_repo}:{world.build}"], world.env, world.limit)


def cosign_copy(world: World, registry: str, dst_repo: str) -> None:
    sh(["cosign", "copy", "--force", "--allow-http-registry", "--allow-insecure-registry",
        f"{world.registry(TEST)}/{world.src_repo}@{world.digest}", f"{registry}/{dst_repo}:{world.build}"],
       world.env, world.limit)


COPY_SIDES = (MOKA, "skopeo copy --all", "cosign copy")
COPY_NOTE = ("moka-images and cosign copy carry the cosign signatures and attestations along, skopeo the image only; "
             "moka-images sets the build tag and latest, the others the build tag")


def run_copy_side(world: World, side: str, dst: RegistryClient, dst_repo: str) -> None:
    if side == MOKA:
        moka_copy(world, dst, dst_repo)
    elif side == "skopeo copy --all":
        skopeo_copy(world, dst.registry, dst_repo)
    else:
        cosign_copy(world, dst.registry, dst_repo)
    if dst.head_manifest(dst_repo, world.build) != world.digest:
        raise RuntimeError(f"{side}: {dst.registry}/{dst_repo}:{world.build} is not {world.digest}")


def row_copy(world: World, rounds: int, raw: float | None) -> Row:
    row = Row("copy", "copy into a registry holding the layers in another repository", "moka <= 1.2x skopeo")
    dev = world.client(DEV)
    for r in range(rounds):
        base = f"bench-fleet-{world.run_id}/copy-r{r}"
        limited("setup P", lambda base=base: skopeo_copy(world, world.registry(DEV), f"{base}/p"), world.limit)
        # and moka-images' cache learns P as skopeo's did (everything is there: nothing moves)
        limited("setup P (moka's cache)", lambda base=base: moka_copy(world, dev, f"{base}/p"), world.limit)
        for side in rotated(COPY_SIDES, r):
            slug = side.split()[0]
            dst_repo = f"{base}/q-{slug}"
            attempt(row, side, f"copy r{r} {side}", lambda side=side, dst_repo=dst_repo: run_copy_side(
                world, side, dev, dst_repo), world.limit)
    row.facts.append(f"P filled by skopeo each round (untimed), then copied into again by moka-images (nothing "
                     f"moves), so both blob-location caches know the layers are in dev/P; "
                     f"{world.total_bytes / 1e6:.0f} MB in {len(world.blob_sizes)} blobs")
    if dev.head_manifest(world.src_repo, "latest") is not None:
        row.facts.append(f"cosign copy (go-containerregistry) asks the target to mount each blob from the source's "
                         f"repository name, and dev has {world.src_repo} too: it mounts rather than uploads")
    row.facts.append(COPY_NOTE)
    add_raw(row, raw)
    return row


class TmpRegistry:
    """A docker-registry of our own on a free loopback port, storage on the stack's disk; removed on exit."""

    def __init__(self, world: World, name: str) -> None:
        self.dir = world.settings.home / f"bench-fleet-{world.run_id}-{name}"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.address = f"127.0.0.1:{s.getsockname()[1]}"
        self.world = world
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RegistryClient:
        (self.dir / "data").mkdir(parents=True)
        config = self.dir / "config.yml"
        config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: "
                          f"{self.dir / 'data'}\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory\n"
                          f"http:\n  addr: {self.address}\n")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "log", "wb"), env=self.world.env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://{self.address}/v2/", timeout=2).status_code == 200:
                    return RegistryClient(self.address)
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"docker-registry on {self.address} did not start: {(self.dir / 'log').read_text()[-500:]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def row_empty(world: World, rounds: int, raw: float | None) -> Row:
    row = Row("empty", "copy into a registry holding none of the blobs", "moka <= 1.0x skopeo")
    free = shutil.disk_usage(world.settings.home).free
    if free < world.total_bytes + DISK_MARGIN:
        row.skipped = (f"{free / 1e9:.1f} GB free on the stack's disk; a registry of our own needs "
                       f"{world.total_bytes / 1e9:.1f} GB and {DISK_MARGIN / 1e9:.0f} GB are left for the others")
        return row
    for r in range(rounds):
        for side in rotated(COPY_SIDES, r):
            with TmpRegistry(world, f"empty-r{r}-{side.split()[0]}") as dst:
                attempt(row, side, f"empty r{r} {side}",
                        lambda side=side, dst=dst: run_copy_side(world, side, dst, f"bench-fleet-{world.run_id}/q"),
                        world.limit)
    row.facts.append(f"a fresh docker-registry per side and round (started and removed by the benchmark, untimed); "
                     f"{world.total_bytes / 1e6:.0f} MB in {len(world.blob_sizes)} blobs")
    row.facts.append(COPY_NOTE)
    add_raw(row, raw)
    return row


def add_raw(row: Row, raw: float | None) -> None:
    if raw is None:
        row.cells.append(("raw limit (cp + sync)", "not measured"))
        return
    row.cells.append(("raw limit (cp + sync of the blob files)", f"{raw:.2f} s"))
    moka = row.seconds.get(MOKA)
    if moka and raw > 0:
        row.facts.append(f"moka median / raw limit = {statistics.median(moka) / raw:.2f}x")


# ---- promote vs the script -----------------------------------------------------------------------------

SCRIPT = r"""#!/bin/bash
# Promote one image from test to dev by hand, as a release engineer would without moka-images.
set -euo pipefail
SRC="$SRC_REGISTRY/$SRC_REPO@$DIGEST"
DST="$DST_REGISTRY/$DST_REPO"
HTTP=(--allow-http-registry --allow-insecure-registry)
# gates: the signature, the scan and smoke attestations, with test's public key
cosign verify --key "$TEST_PUB" --insecure-ignore-tlog=true "${HTTP[@]}" "$SRC" >/dev/null
cosign verify-attestation --key "$TEST_PUB" --type "$SCAN_TYPE" --insecure-ignore-tlog=true "${HTTP[@]}" "$SRC" >/dev/null
cosign verify-attestation --key "$TEST_PUB" --type "$SMOKE_TYPE" --insecure-ignore-tlog=true "${HTTP[@]}" "$SRC" >/dev/null
# the image (under its immutable build tag), then its signatures and attestations
skopeo copy --all --preserve-digests --authfile "$AUTH" --src-tls-verify=false --dest-tls-verify=false \
    "docker://$SRC" "docker://$DST:$BUILD_TAG"
cosign copy --only=sig,att --force "${HTTP[@]}" "$SRC" "$DST:$BUILD_TAG"
# dev's signature and a promotion record
cosign sign --key "$DEV_KEY" --tlog-upload=false --yes "${HTTP[@]}" "$DST@$DIGEST"
cosign attest --key "$DEV_KEY" --type "$PROMOTION_TYPE" --predicate "$PREDICATE" --tlog-upload=false --yes \
    "${HTTP[@]}" "$DST@$DIGEST"
# the rolling tags, last, through the registry API
curl -sSf --netrc-file "$NETRC" -H "Accept: $MEDIA_TYPE" -o "$WORK/index.json" \
    "http://$DST_REGISTRY/v2/$DST_REPO/manifests/$DIGEST"
for tag in $TAGS; do
    curl -sSf --netrc-file "$NETRC" -X PUT -H "Content-Type: $MEDIA_TYPE" --data-binary @"$WORK/index.json" \
        "http://$DST_REGISTRY/v2/$DST_REPO/manifests/$tag" >/dev/null
done
"""


def script_env(world: World, dst_repo: str, work: Path) -> dict[str, str]:
    settings = world.settings
    dev_key = settings.env(DEV).signing_key
    creds = registries.credentials(settings, DEV)
    netrc = work / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {creds.username} password {creds.password}\n")
    netrc.chmod(0o600)
    predicate = work / "promotion.json"
    predicate.write_text(json.dumps({"from": "test", "to": "dev", "digest": str(world.digest), "by": "script",
                                     "at": datetime.now(UTC).isoformat()}))
    version = BuildTag.parse(world.build)
    return {**world.env, "SRC_REGISTRY": world.registry(TEST), "SRC_REPO": world.src_repo, "DIGEST": str(world.digest),
            "DST_REGISTRY": world.registry(DEV), "DST_REPO": dst_repo, "BUILD_TAG": world.build,
            "TAGS": " ".join(rolling_tags(version.version) if version else ["latest"]),
            "TEST_PUB": settings.env(TEST).public_key, "DEV_KEY": dev_key,
            "COSIGN_PASSWORD": keys.password(DEV, dev_key), "SCAN_TYPE": SCAN_TYPE, "SMOKE_TYPE": SMOKE_TYPE,
            "PROMOTION_TYPE": PROMOTION_TYPE, "PREDICATE": str(predicate), "AUTH": str(world.auth),
            "NETRC": str(netrc), "MEDIA_TYPE": world.media_type, "WORK": str(work)}


def row_promote(world: World, rounds: int) -> Row:
    row = Row("promote", "full promotion test -> dev vs the hand-written script", "moka <= 1.0x script")
    if not world.real or not signing.verify_signature(world.settings, TEST, ImageRef(
            world.registry(TEST), world.src_repo, digest=world.digest)).ok:
        row.skipped = f"{world.settings.repository(world.image)} is not in test signed by test's key (run-local first)"
        return row
    script = world.tmp / "promote-by-hand.sh"
    script.write_text(SCRIPT)
    test, dev = world.client(TEST), world.client(DEV)
    for r in range(rounds):
        for side in rotated((MOKA, "script"), r):
            if side == MOKA:
                prefix = f"bench-fleet-{world.run_id}-p{r}"
                own = world.settings.model_copy(update={"repository_prefix": prefix})
                repo = own.repository(world.image)

                def setup(repo: str = repo) -> None:  # in test, as a fresh build would sit (mounts within test)
                    copy_image(test, world.src_repo, test, repo, world.digest)
                    set_tags(test, repo, world.digest, [TagSet(world.build, None), TagSet("latest", None)])

                limited("setup promote source", setup, world.limit)
                env = {**world.env, "MOKA_REPOSITORY_PREFIX": prefix}
                argv = [*CLI, "promote", f"{world.image}:{world.build}", "--to", "dev", "--confirm",
                        "--jobs", str(world.jobs)]
                seconds, _ = timed(f"promote r{r} moka", lambda argv=argv, env=env: sh(argv, env, world.limit),
                                   world.limit)
            else:
                repo = f"bench-fleet-{world.run_id}/promote-r{r}-script/{world.image}"
                work = world.tmp / f"script-r{r}"
                work.mkdir()
                env = script_env(world, repo, work)
                seconds, _ = timed(f"promote r{r} script", lambda env=env: sh(["bash", str(script)], env, world.limit),
                                   world.limit)
            if dev.head_manifest(repo, "latest") != world.digest:
                raise RuntimeError(f"promote r{r} {side}: dev {repo}:latest is not {world.digest}")
            row.add(side, seconds)
    row.facts.append("the script's skopeo mounts the blobs when its blob-info cache ($HOME/.local/share/containers or "
                     "/var/lib/containers) knows a dev repository holding them (rows copy/promote of any earlier run)")
    row.facts.append("the script: cosign verify, 2x cosign verify-attestation, skopeo copy --all, cosign copy "
                     "--only=sig,att, cosign sign, cosign attest, curl for the rolling tags (bench/fleet_bench.py SCRIPT)")
    return row


# ---- status --------------------------------------------------------------------------------------------


def count_processes(world: World, argv: list[str], env: dict[str, str]) -> int:
    """Processes started under `argv` (execve that succeeded, the command itself not counted), via strace."""
    out = world.tmp / f"strace-{uuid.uuid4().hex[:6]}"
    sh(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(out), *argv], env, world.limit)
    # with -f an execve may be split into "<unfinished ...>" and "<... execve resumed>) = 0"; count the results
    lines = [ln for ln in out.read_text().splitlines() if "execve" in ln and ln.rstrip().endswith("= 0")]
    return max(0, len(lines) - 1)


def status_samples(world: World, row: Row, label: str, argv: list[str], env: dict[str, str], rounds: int,
                   images: int, target: float) -> None:
    for r in range(rounds):
        seconds, _ = timed(f"{label} r{r}", lambda: sh(argv, env, world.limit), world.limit)
        row.add(label, seconds)
    median = statistics.median(row.seconds[label])
    row.cells.append((f"{label}: median / target {target:.2f} s", f"{median / target:.2f}x"))
    if shutil.which("strace"):
        n = count_processes(world, argv, env)
        per_image, per_cell = n / max(1, images), n / max(1, images * len(Environment))
        row.cells.append((f"{label}: subprocesses", f"{n} ({per_image:.2f} per image, {per_cell:.2f} per cell)"))
    else:
        row.cells.append((f"{label}: subprocesses", "strace missing: not counted"))


COUNTED = """import sys, threading, requests
from moka_images import cli
sent, lock, send = [0], threading.Lock(), requests.Session.request
def counting(self, method, url, **kw):
    with lock:
        sent[0] += 1
    return send(self, method, url, **kw)
requests.Session.request = counting
code = cli.main(sys.argv[1:])
print(sent[0], file=sys.stderr)
sys.exit(code)
"""


def requests_made(world: World, argv: Sequence[str], env: dict[str, str]) -> int:
    """The registry requests a `moka-images` command line makes, in a process of its own (as a user's run)."""
    done = subprocess.run([sys.executable, "-c", COUNTED, *argv], env=env, capture_output=True, text=True,
                          timeout=world.limit, check=True)
    return int(done.stderr.strip().splitlines()[-1])


def head_rate(world: World, count: int = 2000) -> float:
    """Bare authenticated HEADs of a tag answered per second, `CELLS_AT_ONCE` at a time, by test's registry
    through its gate: the rate no registry read of status can beat on this stack."""
    creds = registries.credentials(world.settings, TEST)
    client = RegistryClient(world.registry(TEST), creds.username, creds.password)
    client.head_manifest(world.src_repo, "latest")
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=CELLS_AT_ONCE) as pool:
        list(pool.map(lambda _: client.head_manifest(world.src_repo, "latest"), range(count)))
    return count / (time.monotonic() - start)


def add_status_raw(world: World, row: Row, label: str, argv: Sequence[str], env: dict[str, str],
                   target: float) -> None:
    """The raw limit beside a status row: its requests at the rate the stack answers bare HEADs."""
    sent, rate = requests_made(world, argv, env), head_rate(world)
    floor = sent / rate
    row.cells.append((f"{label}: raw limit", f"{sent} registry requests at {rate:.0f} bare HEADs/s = {floor:.2f} s"))
    row.facts.append(f"{label}: the median is {statistics.median(row.seconds[label]) / floor:.2f}x the raw limit; "
                     f"the target {target:.2f} s needs {sent / target:.0f} requests/s from this stack")


def push_synthetic(world: World, prefix: str, count: int) -> list[str]:
    """`count` tiny one-platform images in every environment, signed there with its key; returns the names."""
    names = [f"syn-{i:04d}" for i in range(count)]
    amd64 = Platform("linux", "amd64")
    for env in Environment:
        client = world.client(env)

        def push(name: str, client: RegistryClient = client) -> str:
            image = push_image(client, f"{prefix}/{name}", "1.0.0", seed=f"{world.run_id}-{name}",
                               platforms=(amd64,))
            return f"{client.registry}/{image.repository}@{image.digest}"

        with ThreadPoolExecutor(max_workers=8) as pool:
            refs = list(pool.map(push, names, timeout=world.limit))
        key = world.settings.env(env).signing_key
        sign_env = {**world.env, "COSIGN_PASSWORD": keys.password(env, key)}
        batches = [refs[i:i + 100] for i in range(0, len(refs), 100)]

        def sign(batch: list[str], key: str = key, sign_env: dict[str, str] = sign_env) -> None:
            sh(["cosign", "sign", "--key", key, "--tlog-upload=false", "--yes", "--allow-http-registry",
                "--allow-insecure-registry", *batch], sign_env, world.limit)

        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(sign, batches, timeout=world.limit))
        say(f"  {env}: {count} synthetic images pushed and signed")
    return names


def row_status(world: World, rounds: int, synthetic: int) -> Row:
    row = Row("status", "moka-images status --json",
              "declared <= 1 s; synthetic 500 x 4 <= 10 s; no subprocess per image")
    declared = [i.name for i in load_declarations(world.settings.root).images]
    label = f"status, {len(declared)} declared images x 4 envs"
    status_samples(world, row, label, [*CLI, "status", "--json"], world.env, rounds, len(declared), 1.0)
    add_status_raw(world, row, label, ["status", "--json"], world.env, 1.0)
    if synthetic > 0:
        prefix = f"bench-fleet-{world.run_id}-status"
        seconds, names = timed(f"setup: {synthetic} synthetic images x 4 environments",
                               lambda: push_synthetic(world, prefix, synthetic), world.limit)
        row.facts.append(f"setup of {synthetic} x 4 synthetic images (push + cosign sign in batches) took "
                         f"{seconds:.0f}s, untimed")
        env = {**world.env, "MOKA_REPOSITORY_PREFIX": prefix}
        if synthetic != 500:
            row.facts.append(f"the 500 x 4 target (10 s) is scaled linearly to {synthetic} x 4: "
                             f"{10.0 * synthetic / 500:.2f} s")
        label = f"status, {synthetic} synthetic images x 4 envs"
        status_samples(world, row, label, [*CLI, "status", "--json", *names], env, rounds, synthetic,
                       10.0 * synthetic / 500)
        add_status_raw(world, row, label, ["status", "--json", *names], env, 10.0 * synthetic / 500)
    return row


# ---- team image after its base -------------------------------------------------------------------------


def in_dev(world: World, name: str) -> tuple[Digest, str] | None:
    dev = world.client(DEV)
    repo = world.settings.repository(name)
    digest = dev.head_manifest(repo, "latest")
    if digest is None:
        return None
    builds = [t for t in dev.list_tags(repo) if BuildTag.parse(t) and dev.head_manifest(repo, t) == digest]
    return (digest, builds[0]) if builds else None


def layer_sizes(client: RegistryClient, repo: str, digest: Digest) -> tuple[dict[Digest, int], dict[Digest, int]]:
    """(layers, configs) of every platform of an image, by digest."""
    layers, configs = {}, {}
    for m in walk(client, repo, digest):
        if m.is_index:
            continue
        configs[Digest(m.json["config"]["digest"])] = int(m.json["config"]["size"])
        for d in m.json.get("layers", []):
            layers[Digest(d["digest"])] = int(d["size"])
    return layers, configs


def row_team(world: World, rounds: int) -> Row:
    row = Row("team", "team image promoted dev -> staging after its base", "bytes moved <= 1.1x own layers")
    decl = load_declarations(world.settings.root)
    pick = None
    for team in decl.teams:
        found, base = in_dev(world, team.name), in_dev(world, team.base)
        if found and base:
            pick = (team.name, team.base, found, base)
            break
    if pick is None:
        row.skipped = ("no team image is in dev with its base (`scripts/run-local.sh` builds and promotes them): "
                       + ", ".join(t.name for t in decl.teams))
        return row
    team_name, base_name, (team_digest, team_build), (base_digest, base_build) = pick
    dev = world.client(DEV)
    team_layers, team_configs = layer_sizes(dev, world.settings.repository(team_name), team_digest)
    base_layers, _ = layer_sizes(dev, world.settings.repository(base_name), base_digest)
    own = {d: s for d, s in team_layers.items() if d not in base_layers}
    own_bytes = sum(own.values())
    moved: list[int] = []
    for r in range(rounds):
        prefix = f"bench-fleet-{world.run_id}-t{r}"
        own_settings = world.settings.model_copy(update={"repository_prefix": prefix})

        def setup(own_settings: Settings = own_settings) -> None:  # both in dev under the fresh prefix (mounts)
            for name, digest, build in ((base_name, base_digest, base_build), (team_name, team_digest, team_build)):
                src, dst = world.settings.repository(name), own_settings.repository(name)
                copy_image(dev, src, dev, dst, digest)
                set_tags(dev, dst, digest, [TagSet(build, None), TagSet("latest", None)])

        limited("setup team", setup, world.limit)
        env = {**world.env, "MOKA_REPOSITORY_PREFIX": prefix}
        limited("promote base", lambda env=env: sh([*CLI, "promote", f"{base_name}:{base_build}", "--from", "dev",
                                                     "--to", "staging", "--confirm"], env, world.limit), world.limit)
        seconds, done = timed(f"team r{r}: promote {team_name} to staging", lambda env=env: sh(
            [*CLI, "promote", f"{team_name}:{team_build}", "--from", "dev", "--to", "staging", "--confirm", "--json"],
            env, world.limit, stdout=subprocess.PIPE), world.limit)
        doc = json.loads(done.stdout)
        copy = doc.get("copy") or {}
        moved.append(int(copy.get("bytes_copied", 0)))
        row.add(MOKA, seconds)
        say(f"  moved {moved[-1] / 1e6:.1f} MB ({copy.get('blobs_copied')} copied, {copy.get('blobs_mounted')} "
            f"mounted, {copy.get('blobs_present')} present) vs own layers {own_bytes / 1e6:.1f} MB")
    median = statistics.median(moved)
    ratio = median / own_bytes if own_bytes else float("inf")
    row.cells.append(("bytes moved (median) / own layers",
                      f"{median / 1e6:.1f} MB / {own_bytes / 1e6:.1f} MB = {ratio:.2f}x"))
    row.facts.append(f"{team_name} on {base_name}: {len(own)} own layer(s) of {len(team_layers)}, own configs "
                     f"{sum(team_configs.values()) / 1e3:.0f} kB; bytes moved per round: "
                     f"{', '.join(f'{b / 1e6:.1f} MB' for b in moved)} (signatures and attestations included)")
    return row


# ---- 50 images at once ---------------------------------------------------------------------------------


def push_on_base(world: World, repo: str, seed: str) -> tuple[Pushed, dict[str, Any]]:
    """An image made of the source's platforms plus one small layer each, in test (base blobs mounted)."""
    test = world.client(TEST)
    index = test.get_manifest(world.src_repo, str(world.digest))
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    own = hashlib.sha256(f"own-{seed}".encode()).hexdigest()
    build = BuildTag.make("1.0.0", own, world.digest)
    entries, per_platform, blobs = [], {}, []
    for entry in index.json["manifests"]:
        plat = entry.get("platform") or {}
        if plat.get("os") == "unknown":  # buildx's attestation manifests are not platforms
            continue
        m = test.get_manifest(world.src_repo, entry["digest"])
        for d in [m.json["config"], *m.json["layers"]]:
            if not test.mount_blob(repo, Digest(d["digest"]), world.src_repo):
                raise RuntimeError(f"could not mount {d['digest']} into {repo}")
        layer = tar_layer({"opt/job/seed.txt": f"{seed} {plat.get('architecture')}\n".encode(),
                           "opt/job/data.bin": os.urandom(256 * 1024)})
        blobs.append(test.push_blob(repo, layer))
        config = json.loads(test.get_blob(world.src_repo, Digest(m.json["config"]["digest"])))
        config["created"] = created
        config.setdefault("config", {}).setdefault("Labels", {})["dev.moka-images.build-tag"] = str(build)
        config["rootfs"]["diff_ids"].append(str(digest_of(layer)))
        config.setdefault("history", []).append({"created": created})
        raw_config = json.dumps(config).encode()
        blobs.append(test.push_blob(repo, raw_config))
        tar_type = "application/vnd.oci.image.layer.v1.tar" if "oci" in m.media_type else \
            "application/vnd.docker.image.rootfs.diff.tar"
        doc = {**m.json, "config": {**m.json["config"], "digest": str(digest_of(raw_config)), "size": len(raw_config)},
               "layers": [*m.json["layers"], {"mediaType": tar_type, "digest": str(digest_of(layer)),
                                              "size": len(layer)}]}
        raw = json.dumps(doc).encode()
        digest = test.put_manifest(repo, str(digest_of(raw)), raw, m.media_type)
        per_platform[Platform(plat["os"], plat["architecture"])] = digest
        entries.append({"mediaType": m.media_type, "digest": str(digest), "size": len(raw), "platform": plat})
    out = {"schemaVersion": 2, "mediaType": index.media_type, "manifests": entries,
           "annotations": {"org.opencontainers.image.created": created}}
    raw_index = json.dumps(out).encode()
    digest = test.put_manifest(repo, str(digest_of(raw_index)), raw_index, index.media_type)
    for tag in (str(build), *rolling_tags("1.0.0")):
        test.put_manifest(repo, tag, raw_index, index.media_type)
    return Pushed(repo, digest, build, per_platform, tuple(blobs), created), out


def row_load(world: World, count: int, rounds: int, parallel: int = 10) -> Row:
    row = Row("load", f"{count} images sharing the base promoted test -> dev at once", ">= 4 images/s")
    if not world.real:
        row.skipped = f"{world.settings.repository(world.image)} is not in test: no real base to share"
        return row
    scans = attestations.read_attestations(world.settings, TEST, ImageRef(world.registry(TEST), world.src_repo,
                                                                          digest=world.digest), AttestationKind.SCAN)
    # The images' scan evidence: the base's trivy reports (from the scan cache, as the pipeline made them) for
    # each image's own platform digests: they add one small data file. An attested scan that carries its reports
    # is judged as it is, so the gate does not run trivy on 2 x N new platform digests (what the row measures
    # is promotion, not scanning).
    index = world.client(TEST).get_manifest(world.src_repo, str(world.digest))
    base_reports: dict[str, dict[str, Any]] = {}
    for entry in index.json.get("manifests", []):
        plat = entry.get("platform") or {}
        cached = scan_stage.cached_reports(world.settings, Digest(entry["digest"]))
        if plat.get("os") == "linux" and cached:
            base_reports[f"linux/{plat.get('architecture')}"] = cached[-1].to_json()
    if not scans or len(base_reports) < len(index.platforms()):
        row.skipped = ("the source has no scan attestation, or no cached trivy report for every platform "
                       "(`moka-images scan` makes both)")
        return row
    scan_predicate = dict(scans[-1].predicate)
    names = [f"img-{i:03d}" for i in range(count)]
    rates, setups = [], []
    for r in range(rounds):
        prefix = f"bench-fleet-{world.run_id}-load{r}"
        settings = world.settings.model_copy(update={"repository_prefix": prefix})

        def prepare(name: str, settings: Settings = settings) -> Pushed:
            image, _ = push_on_base(world, settings.repository(name), f"{settings.repository_prefix}-{name}")
            ref = ready_in_test(settings, image)  # signature + smoke attestation, as the pipeline leaves it
            reports = [{**base_reports[str(p)], "digest": str(d)} for p, d in image.platforms.items()]
            attestations.attest(settings, TEST, ref, AttestationKind.SCAN,
                                {**scan_predicate, "image": f"{ref}", "reports": reports})
            return image

        seconds, images = timed(f"load r{r} setup: {count} images on the base in test (sign, scan + smoke attest)",
                                lambda prepare=prepare: list(ThreadPoolExecutor(max_workers=2).map(prepare, names)),
                                world.limit)
        setups.append(seconds)

        def one(image: Pushed, settings: Settings = settings, prefix: str = prefix) -> float:
            start = time.monotonic()
            promote(settings, f"{image.repository.removeprefix(prefix + '/')}:{image.build}", DEV, by="bench/fleet")
            return time.monotonic() - start

        def all_at_once(images: list[Pushed] = images, one: Callable[[Pushed], float] = one) -> list[float]:
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                return list(pool.map(one, images))

        wall, each = timed(f"load r{r}: {count} promotions, {parallel} at a time", all_at_once, world.limit)
        dev = world.client(DEV)
        wrong = [i.repository for i in images if dev.head_manifest(i.repository, "latest") != i.digest]
        if wrong:
            raise RuntimeError(f"load: not at their digest in dev: {', '.join(wrong[:5])}")
        row.add(MOKA, wall)
        rates.append(count / wall)
        say(f"  {count / wall:.2f} images/s; slowest promotion {max(each):.1f} s, median {statistics.median(each):.1f} s")
    rate = statistics.median(rates)
    row.cells.append(("images/s (median of rounds; min, max)",
                      f"{rate:.2f} ({min(rates):.2f}, {max(rates):.2f}); median / target 4: {rate / 4:.3f}x"))
    row.facts.append(f"fresh prefix and fresh images per round; setup (push, sign, attest) untimed: "
                     f"{', '.join(f'{s:.0f}s' for s in setups)}")
    return row


# ---- output --------------------------------------------------------------------------------------------


def print_row(row: Row) -> None:
    print(f"\n## {row.key}: {row.title} (target: {row.target})")
    if row.skipped:
        print(f"skipped: {row.skipped}")
        return
    for side in row.sides:
        failed = row.failures.get(side, [])
        if failed:
            print(f"  {side:48} FAILED {len(failed)} of {len(failed) + len(row.seconds[side])} rounds: {failed[0]}")
        if row.seconds[side]:
            lo, med = stats_line(row.seconds[side])
            runs = ", ".join(f"{s:.2f}" for s in row.seconds[side])
            print(f"  {side:48} min {lo:8.2f}s  median {med:8.2f}s  ({runs})")
    if row.seconds.get(MOKA):
        m_lo, m_med = stats_line(row.seconds[MOKA])
        for side in row.sides:
            if side != MOKA and row.seconds[side]:
                lo, med = stats_line(row.seconds[side])
                print(f"  ratio moka-images / {side}: median {m_med / med:.2f}x, min {m_lo / lo:.2f}x")
    for what, value in row.cells:
        print(f"  {what}: {value}")
    for fact in row.facts:
        print(f"  - {fact}")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{os.cpu_count()} CPUs ({cpu}), {platform_mod.system()} {platform_mod.release()}, "
            f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")


def markdown(rows: list[Row], rounds: int) -> str:
    out = [f"Machine: {machine()}; {rounds} rounds, order rotated each round.", "",
           "| row | side / measure | min | median | moka / side (median) | target |",
           "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        if row.skipped:
            out.append(f"| {row.key} | skipped: {row.skipped} | | | | {row.target} |")
            continue
        moka_med = statistics.median(row.seconds[MOKA]) if row.seconds.get(MOKA) else None
        for side in row.sides:
            failed = row.failures.get(side, [])
            if failed:
                out.append(f"| {row.key} | {side}: failed {len(failed)} of {len(failed) + len(row.seconds[side])} "
                           f"rounds ({failed[0][:120].replace('|', '/')}) | | | | {row.target} |")
            if not row.seconds[side]:
                continue
            lo, med = stats_line(row.seconds[side])
            ratio = f"{moka_med / med:.2f}x" if moka_med is not None and side != MOKA else ""
            out.append(f"| {row.key} | {side} | {lo:.2f} s | {med:.2f} s | {ratio} | {row.target} |")
        for what, value in row.cells:
            out.append(f"| {row.key} | {what} | | {value} | | |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ALL_ROWS), help=f"rows to run (default {','.join(ALL_ROWS)})")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per row, at least 3 (default 3)")
    parser.add_argument("--image", default="spark-3.5", help="image in test to copy and promote (default spark-3.5)")
    parser.add_argument("--synthetic", type=int, default=500, help="synthetic images for status (default 500; 0: none)")
    parser.add_argument("--load-images", type=int, default=50, help="images promoted at once (default 50)")
    parser.add_argument("--stand-in-layers", type=int, default=8,
                        help="40 MB layers per platform of the stand-in used when the image is absent (default 8)")
    parser.add_argument("--jobs", type=int, default=4, help="blobs copied at once by moka-images (default 4)")
    parser.add_argument("--limit", type=float, default=LIMIT, help=f"seconds per step (default {LIMIT:.0f})")
    args = parser.parse_args()
    wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in ALL_ROWS]
    if unknown:
        parser.error(f"unknown rows {', '.join(unknown)}; choose from {', '.join(ALL_ROWS)}")
    rounds = max(3, args.rounds)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="moka-fleet-bench-") as tmp:
        world = make_world(args, Path(tmp))
        say(f"run bench-fleet-{world.run_id}: rows {', '.join(wanted)}, {rounds} rounds")
        find_source(world, args.image, args.stand_in_layers)
        raw = raw_limit(world) if {"copy", "empty"} & set(wanted) else None
        makers: dict[str, Callable[[], Row]] = {
            "copy": lambda: row_copy(world, rounds, raw), "empty": lambda: row_empty(world, rounds, raw),
            "promote": lambda: row_promote(world, rounds), "status": lambda: row_status(world, rounds, args.synthetic),
            "team": lambda: row_team(world, rounds), "load": lambda: row_load(world, args.load_images, rounds)}
        for key in wanted:
            try:
                row = makers[key]()
            except Exception as exc:  # noqa: BLE001 - a failed row is reported, the others still run
                say(f"{key} failed: {exc}")
                row = Row(key, "failed", "-", skipped=f"failed: {str(exc).splitlines()[0][:200]}")
            rows.append(row)
            print_row(row)
            sys.stdout.flush()
    print("\n" + markdown(rows, rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
