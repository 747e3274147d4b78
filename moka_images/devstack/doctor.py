"""`moka-images doctor`: every tool and service, with its version, and how to fix what is missing."""

from __future__ import annotations

from dataclasses import dataclass

from moka_images.adapters import run
from moka_images.config.settings import Settings
from moka_images.devstack.services import Daemon, is_ready
from moka_images.errors import MokaError
from moka_images.models import Environment
from moka_images.stages import repositories

_TOOLS = {
    "docker": ["docker", "--version"],
    "docker buildx": ["docker", "buildx", "version"],
    "cosign": ["cosign", "version", "--json"],
    "trivy": ["trivy", "--version"],
    "skopeo": ["skopeo", "--version"],
    "debootstrap": ["debootstrap", "--version"],
    "docker-registry": ["docker-registry", "--version"],
    "moto_server": ["moto_server", "--help"],
    "java": ["java", "-version"],
    "mvn": ["mvn", "-B", "-Dstyle.color=never", "--version"],
    "qemu-aarch64-static": ["qemu-aarch64-static", "--version"],
}


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_tools() -> list[Check]:
    """Find each external tool and ask its version."""
    checks = []
    for name, argv in _TOOLS.items():
        try:
            done = run.call(argv, check=False, quiet=True, timeout=30)
            text = (done.stdout or done.stderr).strip().splitlines()
            version = next((line for line in text if any(c.isdigit() for c in line)), text[0] if text else "")
            ok = done.returncode == 0
            checks.append(Check(name, ok, version[:70], "" if ok else "run scripts/bootstrap.sh"))
        except MokaError as exc:
            checks.append(Check(name, False, exc.message, exc.hint or ""))
    return checks


def check_services(settings: Settings) -> list[Check]:
    """Ask each configured service whether it answers."""
    targets = [("docker engine", Daemon("dockerd", [], ready_socket="/var/run/docker.sock"))]
    if settings.ecr.endpoint:
        targets.append(("ECR endpoint", Daemon("moto", [], ready_url=f"{settings.ecr.endpoint}/moto-api/")))
    targets.append(("mirror registry", Daemon("mirror", [], ready_url=f"http://{settings.mirror}/v2/")))
    for env in Environment:
        reg = settings.env(env).registry
        targets.append((f"{env} registry", Daemon(env.value, [], ready_url=f"http://{reg}/v2/")))
    fix = "moka-images dev up" if settings.local_stack else "check network access and credentials"
    return [Check(name, is_ready(d), "answers" if is_ready(d) else "not answering", fix) for name, d in targets]


def check_blob_mounting(settings: Settings) -> list[Check]:
    """ECR's blob mounting account setting per environment: enabled, disabled, or what could not be learned.

    Only a disabled setting is a problem (ECR then uploads every blob a copy could have mounted); not being able
    to tell (moto implements no account settings) is said, not failed. ECR mounts only between repositories with
    the same encryption settings.
    """
    if settings.ecr.endpoint and not is_ready(Daemon("moto", [], ready_url=f"{settings.ecr.endpoint}/moto-api/")):
        return [Check("blob mounting", True, "unknown: the ECR endpoint does not answer")]
    fix = ("moka-images promote turns it on where the role may (ecr:PutAccountSetting); "
           "ECR mounts only between repositories with the same encryption")
    checks = []
    for env in Environment:
        state = repositories.blob_mounting(settings, env)
        checks.append(Check(f"{env} blob mounting", state.enabled is not False, state.detail, fix))
    return checks
