"""Facts and set-up of the host itself: Debian mirror, binfmt for foreign architectures, native platform."""

from __future__ import annotations

import getpass
import os
import platform as pyplatform
import re
import socket
from pathlib import Path

from moka_images.adapters import run
from moka_images.errors import ServiceError
from moka_images.models import Platform

BINFMT = Path("/proc/sys/fs/binfmt_misc")
_QEMU = {"arm64": "qemu-aarch64", "amd64": "qemu-x86_64"}


def native_platform() -> Platform:
    """The platform this machine runs natively."""
    machine = pyplatform.machine()
    return Platform("linux", {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine))


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian archive this machine's apt uses (never hard-coded: read from its sources)."""
    for path in sorted((sources_dir / "sources.list.d").glob("*.sources")):
        for uri in re.findall(r"^URIs:\s*(\S+)", path.read_text(), flags=re.MULTILINE):
            if "security" not in uri and "debian" in uri:
                return uri
    legacy = sources_dir / "sources.list"
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if parts[:1] == ["deb"]:
                uri = next((p for p in parts[1:] if "://" in p), "")
                if uri and "security" not in uri:
                    return uri
    raise ServiceError("no Debian mirror found in the apt sources", "configure apt, or set os_base in moka.yaml")


def ensure_binfmt(platforms: list[Platform]) -> list[str]:
    """Make foreign-architecture binaries run through qemu; returns the handlers now enabled."""
    native = native_platform()
    wanted = [_QEMU[p.arch] for p in platforms if p.arch != native.arch]
    if not wanted:
        return []
    if not (BINFMT / "status").exists():
        run.call(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)])
    for handler in wanted:
        entry = BINFMT / handler
        if not entry.exists() or "enabled" not in entry.read_text():
            run.call(["update-binfmts", "--enable", handler], check=False)
        if not entry.exists() or "enabled" not in entry.read_text():
            raise ServiceError(f"binfmt handler {handler} is not enabled",
                               "install qemu-user-static and binfmt-support (scripts/bootstrap.sh)")
        if "F" not in _flags(entry):
            raise ServiceError(f"binfmt handler {handler} lacks the F flag, so containers cannot use it",
                               "reinstall qemu-user-static from Debian")
    return wanted


def _flags(entry: Path) -> str:
    match = re.search(r"^flags:\s*(\S*)", entry.read_text(), flags=re.MULTILINE)
    return match.group(1) if match else ""


def is_root() -> bool:
    """Whether we run as root (dockerd, mounts and debootstrap need it)."""
    return os.geteuid() == 0


def user_at_host() -> str:
    """The local user and machine, as `user@host`."""
    return f"{getpass.getuser()}@{socket.gethostname()}"
