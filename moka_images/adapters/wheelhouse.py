"""Python packages resolved on the host into a wheelhouse per platform, with hashes, for offline installs.

Image builds never reach PyPI: pip runs here, downloads binary wheels for the target platform and Python, and
writes a requirements file pinning every file by sha256. Packages that PyPI ships only as a pure-Python sdist
(pyspark) are built into a wheel here once and then resolved like any other.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from moka_images import log
from moka_images.adapters import run
from moka_images.models import Platform

PYTHON_VERSION = "3.11"  # Debian 12's python3 in the images
_MANYLINUX = {
    "amd64": ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64"],
    "arm64": ["manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64"],
}
SDIST_ONLY = ("pyspark",)


@dataclass(frozen=True)
class Wheelhouse:
    """A resolved set of wheels for one platform and its hash-pinned requirements file."""

    directory: Path
    requirements: Path
    files: dict[str, str]  # file name -> sha256


def resolve(pins: list[str], platform: Platform, cache: Path) -> Wheelhouse:
    """Resolve `pins` (and their dependencies) for `platform`, reusing an earlier identical resolution."""
    key = hashlib.sha256(json.dumps([sorted(pins), str(platform), PYTHON_VERSION]).encode()).hexdigest()[:16]
    target = cache / "wheelhouse" / f"{platform.arch}-{key}"
    lock = target / "wheelhouse.json"
    if lock.exists():
        files = json.loads(lock.read_text())["files"]
        return Wheelhouse(target, target / "requirements.txt", files)
    built = cache / "built-wheels"
    for pin in pins:
        name = pin.split("==")[0].lower()
        if name in SDIST_ONLY:
            _build_pure_wheel(pin, built)
    tmp = Path(tempfile.mkdtemp(prefix=f".{platform.arch}-{key}-", dir=target.parent if target.parent.exists()
                                else _mkdir(target.parent)))
    try:
        if pins:
            argv = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(tmp), "--only-binary=:all:",
                    "--python-version", PYTHON_VERSION, "--implementation", "cp",
                    "--abi", "cp" + PYTHON_VERSION.replace(".", ""), "--abi", "abi3", "--abi", "none",
                    "--find-links", str(built)]
            for tag in _MANYLINUX[platform.arch]:
                argv += ["--platform", tag]
            argv += ["--platform", "any"]
            with log.step(f"resolve wheels for {platform}", pins=" ".join(pins)):
                run.call([*argv, *pins], timeout=1800, hint="check the pins exist as wheels for both platforms")
        files = {p.name: _sha256(p) for p in sorted(tmp.glob("*.whl"))}
        lines = [f"{_requirement(name)} --hash=sha256:{digest}" for name, digest in files.items()]
        (tmp / "requirements.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        (tmp / "wheelhouse.json").write_text(json.dumps({"pins": pins, "platform": str(platform), "files": files}))
        try:
            os.replace(tmp, target)  # atomic: a crash leaves no half-resolved wheelhouse behind
        except OSError:
            if not lock.exists():  # not a concurrent twin resolution that landed first
                raise
        files = json.loads(lock.read_text())["files"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Wheelhouse(target, target / "requirements.txt", files)


def copy_into(wheelhouse: Wheelhouse, destination: Path) -> None:
    """Place the wheelhouse in a build context (hard links where possible)."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in [*wheelhouse.files, "requirements.txt"]:
        src, dst = wheelhouse.directory / name, destination / name
        try:
            dst.hardlink_to(src)
        except OSError:
            shutil.copy2(src, dst)


def _build_pure_wheel(pin: str, built: Path) -> None:
    name, _, version = pin.partition("==")
    built.mkdir(parents=True, exist_ok=True)
    if any(built.glob(f"{name.replace('-', '_')}-{version}-*.whl")):
        return
    with tempfile.TemporaryDirectory(prefix="moka-wheel-", dir=built) as tmp:
        with log.step(f"build wheel {pin} from its sdist (once per machine)"):
            run.call([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", tmp, pin],
                     timeout=3600)
        for wheel in Path(tmp).glob("*.whl"):
            os.replace(wheel, built / wheel.name)


def _requirement(filename: str) -> str:
    name, version = filename.split("-")[:2]
    return f"{name}=={version}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
