"""The OS base image: seeded into the local mirror from debootstrap (one rootfs per arch), pinned in a lock.

The lock itself (`config.os_base`) is what builds read.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from moka_images import log
from moka_images.adapters import buildx, host, run
from moka_images.config.os_base import OsBaseLock, lock_path, read_lock
from moka_images.config.settings import Settings
from moka_images.models import Digest, ImageRef, Platform
from moka_images.stages import images, registries

_DOCKERFILE = """FROM scratch
ADD rootfs.tar /
ENV LANG=C.UTF-8
CMD ["bash"]
"""


def seed(settings: Settings) -> OsBaseLock:
    """Make sure the mirror holds the multi-arch OS base and the lock pins it; reuse what exists."""
    mirror = registries.mirror(settings)
    repo, tag = settings.os_base.repository, settings.os_base.tag
    path = lock_path(settings)
    if path.exists():
        lock = read_lock(settings)
        if mirror.head_manifest(repo, lock.digest) is not None:
            return lock
    per_arch: dict[Platform, Digest] = {}
    for platform in settings.platform_list():
        rootfs = rootfs_tarball(settings, platform)
        with tempfile.TemporaryDirectory(prefix="moka-osbase-") as tmp:
            context = Path(tmp)
            (context / "Dockerfile").write_text(_DOCKERFILE)
            _link_or_copy(rootfs, context / "rootfs.tar")
            target = ImageRef(settings.mirror, repo, f"{tag}-{platform.arch}")
            with log.step(f"push OS base {platform}"):
                per_arch[platform] = buildx.build_platform(context, platform, target)
    index = images.write_index(mirror, repo, tag, [per_arch[p] for p in sorted(per_arch)])
    lock = OsBaseLock(f"{settings.mirror}/{repo}:{tag}", str(index), {str(p): str(d) for p, d in per_arch.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_suffix(".tmp")
    tmp_path.write_text(json.dumps(asdict(lock), indent=2))
    tmp_path.replace(path)
    return lock


def rootfs_tarball(settings: Settings, platform: Platform) -> Path:
    """A debootstrap'ed minimal Debian rootfs for `platform`, cached across runs."""
    suite = settings.os_base.suite
    cache = settings.home / "cache" / "os-base"
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"{suite}-{platform.arch}.tar"
    if tarball.exists():
        return tarball
    work = Path(tempfile.mkdtemp(prefix=f"debootstrap-{platform.arch}-", dir=cache))
    try:
        root = work / "root"
        with log.step(f"debootstrap {suite} {platform.arch}"):
            run.call(["debootstrap", "--variant=minbase", f"--arch={platform.arch}", suite, str(root),
                      host.debian_mirror()], timeout=1800)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / junk).glob("*"):
                if item.is_file():
                    item.unlink()
        partial = tarball.with_suffix(".partial")
        run.call(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."])
        partial.replace(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        dst.hardlink_to(src)
    except OSError:
        shutil.copy2(src, dst)
