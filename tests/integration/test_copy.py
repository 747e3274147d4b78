"""The copy engine and promotion against the real local registries, cosign and trivy.

Needs the local stack (`moka-images dev up`). Images are pushed through the registry API under
`itest-promote/<name>-<run>`; promotions run as real `moka-images` processes with MOKA_REPOSITORY_PREFIX set,
so a kill is a real SIGKILL of a real promotion.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cosign_reference
import pytest
from promote_support import Pushed, push_image, ready_in_test, snapshot, suite_settings, tar_layer

from moka_images.adapters import cosign
from moka_images.adapters.blob_cache import BlobLocations
from moka_images.adapters.copy import copy_image, walk
from moka_images.adapters.registry import RegistryClient, digest_of
from moka_images.config.settings import Settings
from moka_images.models import ALL_PLATFORMS, Digest, Environment, ImageRef
from moka_images.stages import history, keys, registries
from moka_images.stages.images import BASE_NAME, base_repository

pytestmark = pytest.mark.integration

TEST, DEV, STAGING = Environment.TEST, Environment.DEV, Environment.STAGING
PREFIX = "itest-promote"
RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def psettings(stack: Settings) -> Settings:
    """The local profile with this suite's own repository prefix, and every environment's keys."""
    return suite_settings(stack, PREFIX)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "moka_images.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "MOKA_REPOSITORY_PREFIX": PREFIX, "MOKA_ACTOR": f"itest-{RUN}"}


def _promote(name: str, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cli("promote", name, "--to", "dev", "--confirm", *extra), env=_env(), check=False,
                          capture_output=True, text=True, timeout=timeout)


def _verify(settings: Settings, env: Environment, key_env: Environment, ref: ImageRef) -> bool:
    registries.login_tools(settings, env)
    return cosign_reference.verify(ref, settings.env(key_env).public_key,
                                   keys.options(settings, key_env, registry_env=env)).ok


def _same_content(settings: Settings, image: Pushed) -> None:
    """Every manifest under the index is in dev, byte for byte, and every blob."""
    src, dst = registries.client(settings, TEST), registries.client(settings, DEV)
    for manifest in walk(src, image.repository, image.digest):
        assert dst.get_manifest(image.repository, str(manifest.digest)).raw == manifest.raw
    assert all(dst.blob_exists(image.repository, b) for b in image.blobs)


def test_copy_preserves_digests_and_signatures_and_a_rerun_does_nothing(psettings: Settings) -> None:
    test = registries.client(psettings, TEST)
    repo = psettings.repository(f"copy-{RUN}")
    image = push_image(test, repo, "1.0.0", seed=f"copy-{RUN}", big_layers=2)
    ref = ready_in_test(psettings, image)
    dev = registries.client(psettings, DEV)

    stats = copy_image(test, repo, dev, repo, image.digest, workers=3)

    _same_content(psettings, image)
    assert stats.blobs_copied == len(image.blobs) + 4  # and the config and layer of .sig and of .att
    assert stats.manifests_written == 3
    sig, att = f"sha256-{image.digest.hex}.sig", f"sha256-{image.digest.hex}.att"
    assert sorted(stats.attachments) == [att, sig]
    for tag in (sig, att):
        assert dev.get_manifest(repo, tag).raw == test.get_manifest(repo, tag).raw
    dev_ref = ImageRef(psettings.env(DEV).registry, repo, digest=image.digest)
    assert _verify(psettings, DEV, TEST, dev_ref)  # test's signature, verified in dev's registry
    assert sorted(dev.list_tags(repo)) == [att, sig]
    assert dev.head_manifest(repo, "latest") is None  # the copy never writes image tags

    again = copy_image(test, repo, dev, repo, image.digest)
    assert not again.changed and again.blobs_present == len(image.blobs) + 4 and again.manifests_present == 3
    assert ref.digest == dev.head_manifest(repo, str(image.digest))


def test_copy_keeps_the_targets_own_signature_and_adds_the_sources(psettings: Settings) -> None:
    test, dev = registries.client(psettings, TEST), registries.client(psettings, DEV)
    repo = psettings.repository(f"merge-{RUN}")
    image = push_image(test, repo, "1.0.0", seed=f"merge-{RUN}")
    ready_in_test(psettings, image, smoke=False)
    copy_image(test, repo, dev, repo, image.digest)
    dev_ref = ImageRef(psettings.env(DEV).registry, repo, digest=image.digest)
    cosign.sign_all([dev_ref], psettings.env(DEV).signing_key, keys.options(psettings, DEV, signing=True))
    # A second signature appears in test (cosign skips one by a key that already signed, so another key's):
    # the copy must merge it into dev's .sig, not overwrite dev's own signature.
    src_ref = ImageRef(psettings.env(TEST).registry, repo, digest=image.digest)
    cosign.sign_all([src_ref], psettings.env(STAGING).signing_key,
                keys.options(psettings, STAGING, registry_env=TEST, signing=True))

    stats = copy_image(test, repo, dev, repo, image.digest)

    assert stats.attachments == [f"sha256-{image.digest.hex}.sig"]
    layers = dev.get_manifest(repo, f"sha256-{image.digest.hex}.sig").json["layers"]
    assert len(layers) == 3  # test's, dev's, and the new one
    assert all(_verify(psettings, DEV, key, dev_ref) for key in (TEST, DEV, STAGING))
    assert not copy_image(test, repo, dev, repo, image.digest).changed


def test_copy_within_one_registry_mounts_instead_of_uploading(psettings: Settings) -> None:
    test = registries.client(psettings, TEST)
    src, dst = psettings.repository(f"mount-src-{RUN}"), psettings.repository(f"mount-dst-{RUN}")
    image = push_image(test, src, "1.0.0", seed=f"mount-{RUN}", big_layers=1)
    stats = copy_image(test, src, test, dst, image.digest)
    assert stats.blobs_mounted == len(image.blobs) and stats.bytes_copied == 0
    assert test.get_manifest(dst, str(image.digest)).raw == test.get_manifest(src, str(image.digest)).raw


def test_a_team_image_copied_after_its_base_mounts_the_bases_layers_in_the_target(psettings: Settings,
                                                                                   tmp_path: Path) -> None:
    """The base sits in repository A of dev; the team image built on its layers goes from test into repository B
    of dev: the base's layers are mounted from A (through the registry gate, which passes the mount's 201 on),
    only the team's own blobs travel, and the image reads back byte for byte. A third copy, told nothing but the
    blob-location cache, moves no bytes at all."""
    test, dev = registries.client(psettings, TEST), registries.client(psettings, DEV)
    base_repo, team_repo = psettings.repository(f"mount-base-{RUN}"), psettings.repository(f"mount-team-{RUN}")
    below = {p: [tar_layer({f"opt/spark/jars/{i}.jar": os.urandom(2 * 1024 * 1024)}) for i in range(3)]
             for p in ALL_PLATFORMS}
    base = push_image(dev, base_repo, "1.0.0", seed=f"mount-base-{RUN}", below=below)
    team = push_image(test, team_repo, "2.0.0", seed=f"mount-team-{RUN}", below=below, big_layers=1,
                      labels={BASE_NAME: f"mount-base-{RUN}"})
    shared = {digest_of(x) for layers in below.values() for x in layers}
    assert shared <= set(base.blobs) and shared <= set(team.blobs)
    own = {d: s for m in walk(test, team_repo, team.digest) if not m.is_index
           for d, s in ((Digest(x["digest"]), int(x["size"])) for x in [m.json["config"], *m.json["layers"]])
           if d not in shared}
    assert base_repository(psettings, test, team_repo, team.digest) == base_repo  # what `land` passes

    with BlobLocations(tmp_path / "blob-locations.sqlite") as cache:
        stats = copy_image(test, team_repo, dev, team_repo, team.digest, mount_from=[base_repo], cache=cache)

        assert stats.blobs_mounted == len(shared) and stats.blobs_copied == len(own)
        assert stats.bytes_copied == sum(own.values()) and stats.bytes_mounted >= 6 * 2 * 1024 * 1024
        _same_content_in(test, dev, team_repo, team)

        elsewhere = psettings.repository(f"mount-again-{RUN}")
        again = copy_image(test, team_repo, dev, elsewhere, team.digest, cache=cache)
        assert (again.blobs_copied, again.bytes_copied, again.blobs_mounted) == (0, 0, len(team.blobs))
        _same_content_in(test, dev, elsewhere, team)


def test_a_team_image_promoted_after_its_base_moves_only_its_own_layers(psettings: Settings) -> None:
    """`moka-images promote`, as CI runs it: the team image's base layers are mounted in dev from the base's
    repository (named by its label, or remembered by the blob-location cache), so the bytes moved are within
    1.1x of the team's own blobs."""
    test = registries.client(psettings, TEST)
    base_name, team_name = f"pbase-{RUN}", f"pteam-{RUN}"
    below = {p: [tar_layer({f"opt/spark/{i}.bin": os.urandom(2 * 1024 * 1024)}) for i in range(2)]
             for p in ALL_PLATFORMS}
    base = push_image(test, psettings.repository(base_name), "1.0.0", seed=f"pbase-{RUN}", below=below)
    team = push_image(test, psettings.repository(team_name), "2.0.0", seed=f"pteam-{RUN}", below=below,
                      big_layers=1, labels={BASE_NAME: base_name})
    for image in (base, team):
        ready_in_test(psettings, image)
    shared = {str(digest_of(x)) for layers in below.values() for x in layers}
    own = sum(int(d["size"]) for m in walk(test, team.repository, team.digest) if not m.is_index
              for d in [m.json["config"], *m.json["layers"]] if d["digest"] not in shared)

    first = _promote(f"{base_name}:1.0.0")
    assert first.returncode == 0, first.stdout + first.stderr
    done = _promote(f"{team_name}:2.0.0", "--json")

    assert done.returncode == 0, done.stdout + done.stderr
    copy = json.loads(done.stdout)["copy"]
    assert copy["blobs_mounted"] >= len(shared) and copy["bytes_mounted"] >= 4 * 2 * 1024 * 1024
    # the team's own blobs, and its signature and smoke attestation from test (a few KB)
    assert own <= copy["bytes_copied"] <= 1.1 * own, (copy, own)
    assert "blob mounting unknown: the ECR endpoint does not implement GetAccountSetting (moto)" in done.stderr
    dev_ref = ImageRef(psettings.env(DEV).registry, team.repository, digest=team.digest)
    assert _verify(psettings, DEV, DEV, dev_ref)
    _same_content(psettings, team)


def _same_content_in(src: RegistryClient, dst: RegistryClient, repo: str, image: Pushed) -> None:
    """The image reads back from `repo` in the target byte for byte, by digest, with every blob."""
    for manifest in walk(src, image.repository, image.digest):
        assert dst.get_manifest(repo, str(manifest.digest)).raw == manifest.raw
    assert all(dst.blob_exists(repo, b) for b in image.blobs)


def _dev_tags(settings: Settings, repo: str) -> dict[str, str]:
    dev = registries.client(settings, DEV)
    return {t: str(d) for t, d in snapshot(dev, repo).items() if not t.startswith("sha256-")}


def test_promotion_killed_mid_copy_then_rerun_ends_consistent(psettings: Settings) -> None:
    test, dev = registries.client(psettings, TEST), registries.client(psettings, DEV)
    name = f"kill-{RUN}"
    repo = psettings.repository(name)
    image = push_image(test, repo, "1.0.0", seed=f"kill-{RUN}", big_layers=12, layer_mb=8)
    ready_in_test(psettings, image)
    proc = subprocess.Popen(_cli("promote", f"{name}:1.0.0", "--to", "dev", "--confirm", "--jobs", "1"),
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    landed: list = []
    deadline = time.monotonic() + 300
    try:
        while not landed and time.monotonic() < deadline and proc.poll() is None:
            landed = [b for b in image.blobs if dev.blob_exists(repo, b)]
            time.sleep(0.02)
        assert landed, f"no blob landed before the promotion ended: {proc.poll()}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        output = proc.communicate()[0]
    assert proc.returncode == -signal.SIGKILL, output
    present = [b for b in image.blobs if dev.blob_exists(repo, b)]
    assert len(present) < len(image.blobs), "the kill came too late to prove anything"
    assert _dev_tags(psettings, repo) == {}, "a tag appeared before the image was complete"

    rerun = _promote(f"{name}:1.0.0")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    _same_content(psettings, image)
    tags = _dev_tags(psettings, repo)
    assert tags == {t: str(image.digest) for t in (str(image.build), "1.0.0", "1.0", "latest")}
    dev_ref = ImageRef(psettings.env(DEV).registry, repo, digest=image.digest)
    assert _verify(psettings, DEV, DEV, dev_ref) and _verify(psettings, DEV, TEST, dev_ref)

    third = _promote(f"{name}:1.0.0", "--json")
    assert third.returncode == 0 and json.loads(third.stdout)["outcome"] == "noop"
    assert _dev_tags(psettings, repo) == tags


def test_two_promotions_at_once_end_with_one_digest_per_tag(psettings: Settings) -> None:
    """Two rebuilds of one version promoted at the same moment: whichever goes first, the newer one wins every
    rolling tag, both build tags land, both promotions are recorded, and each tag names one complete image."""
    test = registries.client(psettings, TEST)
    name = f"race-{RUN}"
    repo = psettings.repository(name)
    older = push_image(test, repo, "1.0.0", seed=f"race-a-{RUN}", big_layers=2, created="2026-01-01T00:00:00Z")
    newer = push_image(test, repo, "1.0.0", seed=f"race-b-{RUN}", big_layers=2, created="2026-01-02T00:00:00Z")
    for image in (older, newer):
        ready_in_test(psettings, image)
    procs = [subprocess.Popen(_cli("promote", f"{name}:{image.build}", "--to", "dev", "--confirm", "--json"),
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for image in (older, newer)]
    results = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, out + err

    tags = _dev_tags(psettings, repo)
    assert tags == {str(older.build): str(older.digest), str(newer.build): str(newer.digest),
                    "1.0.0": str(newer.digest), "1.0": str(newer.digest), "latest": str(newer.digest)}
    for image in (older, newer):
        _same_content(psettings, image)
    mine = [r for r in history.read(psettings) if r.get("repository") == repo]
    assert sorted(r["digest"] for r in mine) == sorted([str(older.digest), str(newer.digest)])


def test_history_lines_are_whole_json(psettings: Settings, tmp_path: Path) -> None:
    local = psettings.model_copy(update={"home": tmp_path})
    writer = ("import sys; from moka_images.stages import history; from moka_images.config.settings import load_settings; "
              "s = load_settings(); [history.append(s, {'n': i, 'w': sys.argv[1], 'pad': 'x' * 5000}) "
              "for i in range(200)]")
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(w)], env={**os.environ, "MOKA_HOME": str(tmp_path)})
             for w in range(3)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    records = history.read(local)
    assert len(records) == 600 and len(history.history_file(local).read_text().splitlines()) == 600


def test_the_blob_location_cache_takes_writers_in_several_processes_at_once(tmp_path: Path) -> None:
    path = tmp_path / "blob-locations.sqlite"
    writer = ("import sys; from pathlib import Path; from moka_images.adapters.blob_cache import BlobLocations; "
              "from moka_images.adapters.registry import digest_of; c = BlobLocations(Path(sys.argv[1])); "
              "[c.seen('127.0.0.1:15002', f'repo-{sys.argv[2]}', [digest_of(str(i).encode())]) or "
              "c.where('127.0.0.1:15002', digest_of(str(i).encode())) for i in range(150)]")
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(path), str(w)], stderr=subprocess.PIPE, text=True)
             for w in range(4)]
    for p in procs:
        err = p.communicate(timeout=120)[1]
        assert p.returncode == 0 and "going on without it" not in err, err
    with BlobLocations(path) as cache:
        assert all(sorted(cache.where("127.0.0.1:15002", digest_of(str(i).encode()))) == [f"repo-{w}" for w in range(4)]
                   for i in range(150))
