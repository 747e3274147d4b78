"""`moka-images dev up|down|env|status`: the local real stack, started idempotently, stopped only if ours."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from moka_images import log
from moka_images.adapters import host, run
from moka_images.adapters.registry import is_local
from moka_images.config.settings import Settings
from moka_images.devstack import osbase, services
from moka_images.devstack.services import Daemon
from moka_images.errors import ConfigError, ServiceError
from moka_images.models import Environment
from moka_images.stages import keys, registries
from moka_images.stages.verify import dbmirror

DOCKER_SOCKET = "/var/run/docker.sock"
MOTO = "moto"

_REGISTRY_CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: {addr}
  headers:
    X-Content-Type-Options: [nosniff]
{auth}"""

_AUTH = """auth:
  htpasswd:
    realm: {realm}
    path: {htpasswd}
"""


def run_dir(settings: Settings) -> Path:
    """Pid files and logs of the daemons we start."""
    path = settings.home / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _port(address: str) -> str:
    if not is_local(address):
        raise ConfigError(f"{address} is not a local address", "`dev up` only runs the local profile's stack")
    return address


def dockerd_daemon(settings: Settings, storage_driver: str) -> Daemon:
    """dockerd without its bridge or iptables: every build and container uses host networking on loopback."""
    rd = run_dir(settings)
    return Daemon("dockerd", [
        "dockerd", "--bridge=none", "--iptables=false", "--ip6tables=false", f"--storage-driver={storage_driver}",
        f"--pidfile={rd / 'dockerd.engine.pid'}", f"--host=unix://{DOCKER_SOCKET}",
    ], ready_socket=DOCKER_SOCKET)


def ensure_docker(settings: Settings) -> str:
    """Use a running engine, or start one with overlay2, falling back to vfs where the kernel says no."""
    try:
        return services.ensure(dockerd_daemon(settings, "overlay2"), run_dir(settings), timeout=60)
    except ServiceError as first:
        log.warn(f"dockerd with overlay2 failed ({first.message.splitlines()[0]}); trying vfs")
        return services.ensure(dockerd_daemon(settings, "vfs"), run_dir(settings), timeout=60)


def moto_daemon(settings: Settings) -> Daemon:
    """moto's server standing in for the ECR/STS control plane."""
    endpoint = settings.ecr.endpoint or ""
    hostport = endpoint.split("://", 1)[-1].rstrip("/")
    host_, port = _port(hostport).rsplit(":", 1)
    return Daemon(MOTO, ["moto_server", "-H", host_, "-p", port], ready_url=f"{endpoint}/moto-api/")


def registry_daemon(settings: Settings, name: str, address: str, htpasswd: Path | None) -> Daemon:
    """A CNCF distribution registry on loopback, with htpasswd auth when given."""
    base = settings.home / "registries" / name
    (base / "data").mkdir(parents=True, exist_ok=True)
    auth = _AUTH.format(realm=f"moka-{name}", htpasswd=htpasswd) if htpasswd else ""
    config = base / "config.yml"
    config.write_text(_REGISTRY_CONFIG.format(data=base / "data", addr=_port(address), auth=auth))
    return Daemon(f"registry-{name}", ["docker-registry", "serve", str(config)], ready_url=f"http://{address}/v2/")


GATE_BACKEND_OFFSET = 1000


def backend_address(address: str) -> str:
    """Where the real registry behind an environment's gate listens: loopback, the gate's port + 1000."""
    return f"127.0.0.1:{int(_port(address).rsplit(':', 1)[1]) + GATE_BACKEND_OFFSET}"


def gate_faults(settings: Settings, name: str) -> Path:
    """The fault file an environment's gate re-reads (absent: no faults); written by `registry_gate.Faults`."""
    return run_dir(settings) / f"gate-{name}.faults.json"


def gate_daemon(settings: Settings, name: str, address: str) -> Daemon:
    """The registry gate on an environment's address: ECR's tag immutability in front of its registry."""
    return Daemon(f"gate-{name}", [
        sys.executable, "-m", "moka_images.devstack.registry_gate", "--listen", _port(address),
        "--backend", backend_address(address), "--faults", str(gate_faults(settings, name)),
    ], ready_url=f"http://{address}/v2/")


def ensure_ours(daemon: Daemon, rd: Path) -> str:
    """`services.ensure` for a daemon whose data lives in this home.

    One of ours that no longer answers where it should (an environment's registry from before the gate, still
    serving the gate's port) is restarted. One that answers but that this home did not start is refused: it
    belongs to another MOKA_HOME, and using it would mix that home's registries, records and OS base with ours.
    """
    ours, ready = services.started_pid(rd, daemon.name) is not None, services.is_ready(daemon)
    if ours and not ready:
        services.stop(rd, daemon.name)
    elif ready and not ours:
        raise ServiceError(f"{daemon.name} already answers at {daemon.ready_url}, but it was not started from "
                           f"this MOKA_HOME ({rd.parent}): its data lives in another home",
                           "stop it with `moka-images dev down` under the MOKA_HOME that started it, or use that home")
    return services.ensure(daemon, rd)


# distribution checks the password on every request. It is a random ECR token, not a person's password, so
# bcrypt's lowest cost (4) guards it as well as any: at htpasswd's default (5) the check doubles to about 2.4 ms
# of CPU a request here (registry CPU over 1,000 HEADs: 4.2 ms a request at 5, 2.7 ms at 4; one run each), more
# than the registry's own work, and status or a promotion pays it per request.
BCRYPT_COST = 4


def write_htpasswd(path: Path, username: str, password: str) -> None:
    """bcrypt htpasswd file holding exactly one user (ECR's `AWS` and the account's token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    user, _, hashed = path.read_text().strip().partition(":") if path.exists() else ("", "", "")
    if user != username or not hashed.startswith(f"$2y${BCRYPT_COST:02d}$") or not _matches(path, username, password):
        out = run.call(["htpasswd", "-iBn", "-C", str(BCRYPT_COST), username], input_text=password, quiet=True)
        path.write_text(out.stdout.strip() + "\n")


def _matches(path: Path, username: str, password: str) -> bool:
    done = run.call(["htpasswd", "-viB", str(path), username], input_text=password, check=False, quiet=True)
    return done.returncode == 0


def up(settings: Settings) -> None:
    """Bring up everything the local profile needs; a rerun only starts what is missing."""
    if not settings.local_stack:
        raise ConfigError(f"profile {settings.profile!r} is not a local stack", "use --profile local")
    if not host.is_root():
        raise ServiceError("the local stack needs root (dockerd, binfmt, debootstrap)", "run as root")
    rd = run_dir(settings)
    with log.step("docker engine"):
        log.info(f"dockerd: {ensure_docker(settings)}")
    with log.step("binfmt for foreign architectures"):
        enabled = host.ensure_binfmt(settings.platform_list())
        log.info("qemu handlers: " + (", ".join(enabled) or "none needed"))
    with log.step("ECR control plane (moto)"):
        log.info(f"moto: {ensure_ours(moto_daemon(settings), rd)}")
    with log.step("registries"):
        log.info(f"mirror: {ensure_ours(registry_daemon(settings, 'mirror', settings.mirror, None), rd)}")
        for env in Environment:
            cfg = settings.env(env)
            creds = registries.credentials(settings, env, fresh=True)  # the registry's password: ECR's own
            htpasswd = settings.home / "registries" / env.value / "htpasswd"
            write_htpasswd(htpasswd, creds.username, creds.password)
            backend = registry_daemon(settings, env.value, backend_address(cfg.registry), htpasswd)
            ensure_ours(backend, rd)
            state = ensure_ours(gate_daemon(settings, env.value, cfg.registry), rd)
            registries.login_tools(settings, env)  # asks the registry first: it answers and takes the token
            log.info(f"{env}: {state} at {cfg.registry} (account {cfg.account}), registry behind the gate at "
                     f"{backend_address(cfg.registry)}")
    with log.step("signing keys"):
        created = keys.ensure_keys(settings)
        log.info("created keys for: " + (", ".join(map(str, created)) or "none (all present)"))
    with log.step("OS base image in the mirror"):
        lock = osbase.seed(settings)
        log.info(f"{lock.reference}@{lock.digest}")
    with log.step("vulnerability databases in the mirror"):
        vuln, java = dbmirror.mirror_databases(settings, registries.mirror(settings))
        log.info(f"trivy DB {vuln.short}, Java DB {java.short}")


def down(settings: Settings) -> list[str]:
    """Stop what `up` started, newest first; returns the names stopped."""
    rd = run_dir(settings)
    envs = [name for e in reversed(Environment) for name in (f"gate-{e.value}", f"registry-{e.value}")]
    names = [*envs, "registry-mirror", MOTO, "dockerd"]
    return [name for name in names if services.stop(rd, name)]


def env_lines(settings: Settings) -> list[str]:
    """Shell assignments for each environment's registry and credentials (for docker, skopeo, cosign)."""
    lines = [f"MOKA_MIRROR_REGISTRY={shlex.quote(settings.mirror)}"]
    if settings.ecr.endpoint:
        lines.append(f"MOKA_ECR_ENDPOINT={shlex.quote(settings.ecr.endpoint)}")
    for env in Environment:
        creds = registries.credentials(settings, env)
        prefix = f"MOKA_{env.value.upper()}"
        lines += [f"{prefix}_REGISTRY={shlex.quote(settings.env(env).registry)}",
                  f"{prefix}_USERNAME={shlex.quote(creds.username)}",
                  f"{prefix}_PASSWORD={shlex.quote(creds.password)}",
                  f"{prefix}_ACCOUNT={shlex.quote(settings.env(env).account)}"]
    return [f"export {line}" for line in lines]

