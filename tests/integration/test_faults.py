"""Faults on the real stack: a flaky registry, a registry that dies mid-push, a killed build, a full disk.

Promotions go from the shared test registry into a lane of this module's own: a CNCF registry on a free
loopback port, holding dev's ECR token in its htpasswd, behind a registry gate whose fault file the tests
write (`registry_gate.Faults`), and settings in which that gate is dev's registry. So the real promotion code
(gates, copy, cosign signing and attesting, tag moves, records) runs against broken registries while the
shared stack stays untouched. The full-disk lane keeps its registry's storage on a small tmpfs.

After each case: a rerun converges, no tag points at an incomplete image, and an image promoted into the lane
before the fault (the anchor) still has every tag, manifest and blob, byte for byte. A killed promotion is
proved in test_copy.py (`test_promotion_killed_mid_copy_then_rerun_ends_consistent`). docs/FAULTS.md lists
the cases; this module prints its outcomes at the end.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from daemon_support import free_port, stop, wait_ready
from promote_support import Pushed, push_image, ready_in_test

from moka_images.adapters import run
from moka_images.adapters.copy import walk
from moka_images.adapters.registry import RegistryClient
from moka_images.config.settings import Settings
from moka_images.devstack import stack
from moka_images.devstack.registry_gate import Faults
from moka_images.errors import CommandFailed, MokaError
from moka_images.models import Digest, Environment, Platform
from moka_images.plan.promotion import Outcome
from moka_images.stages import registries
from moka_images.stages.planning import compute_plan
from moka_images.stages.promote.apply import promote

pytestmark = pytest.mark.integration

TEST, DEV = Environment.TEST, Environment.DEV
PREFIX = "scratch-faults"
RUN = uuid.uuid4().hex[:8]
OUTCOMES: list[tuple[str, str]] = []
KILLED_PROMOTION = ("`moka-images promote --confirm` SIGKILLed mid-copy",
                    ("proved in test_copy.py::test_promotion_killed_mid_copy_then_rerun_ends_consistent: no tag "
                    "before the image is complete; the rerun finishes the copy and moves the tags; then a no-op"))





@dataclass
class Lane:
    """Our own registry and gate standing in for dev, and settings that promote into it."""

    settings: Settings
    address: str  # the gate: dev's registry in `settings`
    backend: str
    faults: Path
    tmp: Path
    pids: dict[str, int] = field(default_factory=dict)

    def start_registry(self, storage: Path) -> None:
        creds = registries.credentials(self.settings, DEV)
        htpasswd = self.tmp / "htpasswd"
        stack.write_htpasswd(htpasswd, creds.username, creds.password)
        config = self.tmp / "registry.yml"
        config.write_text(yaml.safe_dump({
            "version": 0.1, "log": {"level": "warn"}, "http": {"addr": self.backend},
            "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
            "auth": {"htpasswd": {"realm": "faults", "path": str(htpasswd)}}}))
        self.pids["registry"] = run.spawn(["docker-registry", "serve", str(config)], self.tmp / "registry.log")
        wait_ready(f"http://{self.backend}/v2/", self.pids["registry"], self.tmp / "registry.log")

    def start_gate(self) -> None:
        self.pids["gate"] = run.spawn([sys.executable, "-m", "moka_images.devstack.registry_gate", "--listen",
                                       self.address, "--backend", self.backend, "--faults", str(self.faults)],
                                      self.tmp / "gate.log")
        wait_ready(f"http://{self.address}/v2/", self.pids["gate"], self.tmp / "gate.log")

    def direct(self) -> RegistryClient:
        """The registry itself, past the gate and its faults."""
        creds = registries.credentials(self.settings, DEV)
        return RegistryClient(self.backend, creds.username, creds.password)

    def stop(self) -> None:
        for pid in self.pids.values():
            stop(pid)


def open_lane(stack_settings: Settings, tmp: Path, storage: Path) -> Lane:
    address, backend = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    envs = dict(stack_settings.environments)
    envs[DEV] = envs[DEV].model_copy(update={"registry": address})
    local = stack_settings.model_copy(update={"repository_prefix": PREFIX, "environments": envs})
    lane = Lane(local, address, backend, tmp / "faults.json", tmp)
    lane.start_registry(storage)
    lane.start_gate()
    return lane


@dataclass(frozen=True)
class Anchor:
    """An image promoted into a lane before any fault, as it stood then."""

    repository: str
    tags: dict[str, Digest]
    manifests: dict[Digest, bytes]
    blobs: tuple[Digest, ...]


def image_tags(client: RegistryClient, repository: str) -> dict[str, Digest]:
    """Tags that name images (not cosign's), and where they point."""
    return {t: d for t in client.list_tags(repository) if not t.startswith("sha256-")
            and (d := client.head_manifest(repository, t)) is not None}


def ready(settings: Settings, name: str, **kw: object) -> Pushed:
    """A small two-platform image in the shared test registry, signed and smoke-attested there."""
    image = push_image(registries.client(settings, TEST), settings.repository(name), "1.0.0", seed=f"{name}-{RUN}",
                       **kw)  # type: ignore[arg-type]
    ready_in_test(settings, image)
    return image


def promote_anchor(lane: Lane) -> Anchor:
    image = ready(lane.settings, f"anchor-{lane.address.rsplit(':', 1)[1]}-{RUN}")
    assert promote(lane.settings, _spec(image), DEV).decision.outcome is Outcome.COPY
    client = lane.direct()
    manifests = {m.digest: m.raw for m in walk(client, image.repository, image.digest)}
    anchor = Anchor(image.repository, image_tags(client, image.repository), manifests, image.blobs)
    assert set(anchor.tags) == {str(image.build), "1.0.0", "1.0", "latest"}
    return anchor


def assert_anchor_intact(lane: Lane, anchor: Anchor) -> None:
    client = lane.direct()
    assert image_tags(client, anchor.repository) == anchor.tags, "a tag of the promoted anchor moved"
    for digest, raw in anchor.manifests.items():
        assert client.get_manifest(anchor.repository, str(digest)).raw == raw
    for blob in anchor.blobs:
        client.get_blob(anchor.repository, blob)  # verified against its digest


def assert_complete(lane: Lane, image: Pushed) -> None:
    """Every manifest and blob of `image` in the lane byte for byte, and its tags on its index."""
    src, dst = registries.client(lane.settings, TEST), lane.direct()
    for manifest in walk(src, image.repository, image.digest):
        assert dst.get_manifest(image.repository, str(manifest.digest)).raw == manifest.raw
    for blob in image.blobs:
        dst.get_blob(image.repository, blob)
    assert image_tags(dst, image.repository) == {t: image.digest for t in (str(image.build), "1.0.0", "1.0", "latest")}


def assert_no_tag_on_incomplete(lane: Lane, image: Pushed) -> None:
    """Whatever landed, no image tag names it (or anything) until the copy completed."""
    assert image_tags(lane.direct(), image.repository) == {}, "a tag points at an incomplete image"


def _spec(image: Pushed) -> str:
    return f"{image.repository.removeprefix(PREFIX + '/')}:{image.build}"


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print each case and its outcome when the module ends."""
    yield
    writer = request.config.pluginmanager.get_plugin("terminalreporter")
    if writer is not None and OUTCOMES:
        writer.write_line("\nfault cases (docs/FAULTS.md):")
        for case, outcome in [*OUTCOMES, KILLED_PROMOTION]:
            writer.write_line(f"  - {case}: {outcome}")


@pytest.fixture(scope="module")
def lane(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lane]:
    tmp = tmp_path_factory.mktemp("lane")
    opened = open_lane(stack, tmp, tmp / "data")
    yield opened
    opened.stop()


@pytest.fixture(scope="module")
def anchor(lane: Lane) -> Anchor:
    return promote_anchor(lane)


# ---- the cases ------------------------------------------------------------------------------------------


def test_a_registry_answering_500_and_429_part_of_the_time(lane: Lane, anchor: Anchor,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """The copy rides the faults out (retries with backoff, Retry-After honoured). cosign, which signs and
    attests in the target, makes many requests per run and stops at the first 429 or 500; moka retries it a few
    times, but at these rates every try may meet one: then the promotion stops before any tag moves, with the
    copy complete, and the rerun once the registry heals finishes it."""
    image = ready(lane.settings, f"flaky-{RUN}", big_layers=3)
    Faults(error_rate=0.15, throttle_rate=0.1, retry_after=0, seed=7).write(lane.faults)
    port = lane.address.rsplit(":", 1)[1]
    failure: CommandFailed | None = None
    try:
        with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
            promote(lane.settings, _spec(image), DEV)
    except CommandFailed as exc:
        failure = exc
    finally:
        lane.faults.unlink()
    answers = [m for r in caplog.records if f":{port} \"" in (m := r.getMessage())]
    injected = {code: sum(f'" {code} ' in m for m in answers) for code in (500, 429)}
    assert injected[500] >= 3 and injected[429] >= 2, injected
    if failure is not None:
        assert "cosign" in failure.argv[0] and _injected(failure.output_tail), failure.message
        assert_no_tag_on_incomplete(lane, image)
        client = lane.direct()
        assert all(client.blob_exists(image.repository, b) for b in image.blobs), "the copy did not finish"
        assert client.head_manifest(image.repository, str(image.digest)) == image.digest
        rerun = promote(lane.settings, _spec(image), DEV)
        assert rerun.copy is not None and not rerun.copy.blobs_copied, "the rerun copied again"
    assert_complete(lane, image)
    assert_anchor_intact(lane, anchor)
    faults = f"{injected[500]} injected 500s and {injected[429]} 429s in {len(answers)} requests of the copy engine"
    OUTCOMES.append(("registry answers 500 (15%) and 429 (10%) of requests", (
        f"converged in one run through {faults}" if failure is None else
        f"the copy converged through {faults}; then cosign gave up on an injected "
        f"{_injected(failure.output_tail)} in each of its tries and the promotion stopped before any tag moved; the rerun, registry healed, signed and moved the tags without copying")))


def _injected(output: str) -> str | None:
    """Which injected answer a tool's output reports, if any."""
    if "429" in output or "Too Many Requests" in output or "TOOMANYREQUESTS" in output:
        return "429"
    return "500" if re.search(r"\b500\b|internal error \(injected\)", output) else None


def test_a_registry_that_dies_mid_push(lane: Lane, anchor: Anchor) -> None:
    image = ready(lane.settings, f"dies-{RUN}", big_layers=3, layer_mb=4)
    Faults(die_after_bytes=6 * 1024 * 1024, die="exit").write(lane.faults)

    with pytest.raises(MokaError) as failed:
        promote(lane.settings, _spec(image), DEV)

    _, status = os.waitpid(lane.pids["gate"], 0)
    assert os.waitstatus_to_exitcode(status) == 3, "the gate did not die as told"
    assert "not reachable" in failed.value.message or "failed" in failed.value.message, failed.value.message
    assert_no_tag_on_incomplete(lane, image)
    assert lane.direct().head_manifest(image.repository, str(image.digest)) is None, "the index landed"
    lane.faults.unlink()
    lane.start_gate()

    rerun = promote(lane.settings, _spec(image), DEV)

    assert rerun.decision.outcome is Outcome.COPY and rerun.copy is not None
    assert_complete(lane, image)
    assert promote(lane.settings, _spec(image), DEV).decision.outcome is Outcome.NOOP
    assert_anchor_intact(lane, anchor)
    first = re.sub(r"\s+", " ", failed.value.message)[:200]
    OUTCOMES.append(("registry process exits after 6 MiB of a push",
                     (f"promotion failed cleanly ({type(failed.value).__name__}: {first}); no tag, no index "
                     f"in dev; rerun after restart copied the rest ({rerun.copy.blobs_copied} blobs) and moved "
                     f"the tags; a third run is a no-op")))


def test_a_killed_build_converges_on_rerun(settings: Settings, built: dict, tmp_path: Path,
                                           lane: Lane, anchor: Anchor) -> None:
    tree, name = _probe_tree(settings, tmp_path)
    image = f"itest/{name}"
    local = settings.model_copy(update={"root": tree})
    tag = compute_plan(local, images=[image]).decision(image).tag
    assert tag
    repo, test = settings.repository(image), registries.client(settings, TEST)
    spark_before = test.head_manifest(settings.repository("spark-3.5"), "latest")
    argv = [sys.executable, "-m", "moka_images.cli", "--log-format", "json", "build", image, "--jobs", "1"]
    env = {**os.environ, "MOKA_ROOT": str(tree)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    seen: list[str] = []
    watchdog = threading.Timer(900, os.killpg, (proc.pid, signal.SIGKILL))  # a build that hangs ends too
    watchdog.start()
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("{") and json.loads(line).get("msg") == f"▶ {image} linux/arm64":
                os.killpg(proc.pid, signal.SIGKILL)  # the runner dies: the build and everything it started
                break
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-20:])
    left = set(test.list_tags(repo))
    assert f"{tag}-amd64" in left, f"amd64 was not pushed before the kill: {left}"
    assert tag not in left and "latest" not in left, "a tag points at an image the build never finished"
    amd64 = test.head_manifest(repo, f"{tag}-amd64")

    rerun = subprocess.run([*argv[:-2], "--json"], env=env, capture_output=True, text=True, timeout=1200,
                           check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    index = test.get_manifest(repo, tag)
    assert index.platforms()[Platform("linux", "amd64")] == amd64, "the rerun rebuilt what the killed run pushed"
    assert set(index.platforms()) == {Platform("linux", "amd64"), Platform("linux", "arm64")}
    assert test.head_manifest(repo, "latest") == index.digest
    again = subprocess.run([*argv[:-2], "--json"], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0 and [r["action"] for r in json.loads(again.stdout) if r["image"] == image] == ["skip"]
    assert test.head_manifest(settings.repository("spark-3.5"), "latest") == spark_before
    assert_anchor_intact(lane, anchor)
    OUTCOMES.append(("`moka-images build` SIGKILLed (process group) after amd64 was pushed, while arm64 built",
                     ("only the immutable per-arch tag was left, no build tag or latest; the rerun kept that "
                     "amd64 digest, built arm64, merged the index and moved the tags; a third run skips")))


def _probe_tree(settings: Settings, tmp: Path) -> tuple[Path, str]:
    """A copy of the declarations plus a throw-away team image (as test_build.py makes)."""
    for part in ("images", "manifests", "moka.yaml"):
        src = settings.root / part
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp / part)
    team = tmp / "manifests" / "itest"
    (team / "fault").mkdir(parents=True)
    (team / "fault" / "job.py").write_text(f"print('fault probe {RUN}')\n")
    name = f"fault-{RUN}"
    (team / f"{name}.yaml").write_text(yaml.safe_dump({
        "name": name, "team": "itest", "version": "1.0.0", "base": "spark-3.5", "description": "fault test probe",
        "files": [{"src": "fault/job.py", "dest": "fault/job.py"}]}))
    return tmp, name


@pytest.fixture
def small_disk(stack: Settings, tmp_path: Path) -> Iterator[tuple[Lane, Path]]:
    """A lane whose registry stores on a 24 MiB tmpfs."""
    disk = tmp_path / "disk"
    disk.mkdir()
    run.call(["mount", "-t", "tmpfs", "-o", "size=24m", "moka-faults", str(disk)])
    try:
        opened = open_lane(stack, tmp_path, disk / "data")
        try:
            yield opened, disk
        finally:
            opened.stop()
    finally:
        run.call(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_fails_clearly_and_converges_once_space_is_freed(small_disk: tuple[Lane, Path]) -> None:
    lane, disk = small_disk
    anchor = promote_anchor(lane)
    image = ready(lane.settings, f"full-{RUN}", big_layers=2, layer_mb=8)  # 32 MiB of layers over two platforms

    with pytest.raises(MokaError) as failed:
        promote(lane.settings, _spec(image), DEV)

    message = str(failed.value)
    assert "no space left on device" in message.lower(), message
    assert_no_tag_on_incomplete(lane, image)
    assert_anchor_intact(lane, anchor)
    run.call(["mount", "-o", "remount,size=128m", str(disk)])

    rerun = promote(lane.settings, _spec(image), DEV)

    assert rerun.decision.outcome is Outcome.COPY
    assert_complete(lane, image)
    assert_anchor_intact(lane, anchor)
    shown = re.sub(r"\s+", " ", message)
    OUTCOMES.append(("registry storage on a 24 MiB tmpfs, 32 MiB image",
                     (f"promotion failed with: {shown}; no tag in dev, the anchor intact; after growing the disk "
                     f"to 128 MiB the rerun converged")))
