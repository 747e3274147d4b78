"""Local daemons (dockerd, registries, moto): start once, remember what we started, stop only that."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from moka_images.adapters import run
from moka_images.errors import ServiceError


@dataclass(frozen=True)
class Daemon:
    """A daemon we manage: its name, command, and how to tell it is ready."""

    name: str
    argv: list[str]
    ready_url: str | None = None
    ready_socket: str | None = None
    env: dict[str, str] | None = None


def pid_file(run_dir: Path, name: str) -> Path:
    """Where the pid of a daemon we started is kept."""
    return run_dir / f"{name}.pid"


def is_alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a child we spawned and never reaped lingers as a zombie: dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def started_pid(run_dir: Path, name: str) -> int | None:
    """Pid of a daemon we started and that still runs."""
    path = pid_file(run_dir, name)
    try:
        pid = int(json.loads(path.read_text())["pid"])
    except (FileNotFoundError, ValueError, KeyError, json.JSONDecodeError):
        return None
    return pid if is_alive(pid) else None


def is_ready(daemon: Daemon) -> bool:
    """Whether the daemon answers on its socket or URL."""
    if daemon.ready_socket:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(1)
                sock.connect(daemon.ready_socket)
            return True
        except OSError:
            return False
    if daemon.ready_url:
        try:
            session = requests.Session()
            session.trust_env = False
            session.get(daemon.ready_url, timeout=1)
            return True
        except requests.RequestException:
            return False
    return False


def ensure(daemon: Daemon, run_dir: Path, timeout: float = 60) -> str:
    """Start `daemon` unless it already answers; returns 'running' or 'started'."""
    if is_ready(daemon):
        return "running"
    log_path = run_dir / f"{daemon.name}.log"
    pid = run.spawn(daemon.argv, log_path, env=daemon.env)
    pid_file(run_dir, daemon.name).write_text(json.dumps({"pid": pid, "argv": daemon.argv}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_ready(daemon):
            return "started"
        if not is_alive(pid):
            break
        time.sleep(0.2)
    tail = log_path.read_text(errors="replace").strip().splitlines()[-10:] if log_path.exists() else []
    raise ServiceError(f"{daemon.name} did not start:\n" + "\n".join(tail), f"see {log_path}")


def stop(run_dir: Path, name: str, timeout: float = 20) -> bool:
    """Stop a daemon we started (never one we did not); True if something was stopped."""
    pid = started_pid(run_dir, name)
    pid_file(run_dir, name).unlink(missing_ok=True)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and is_alive(pid):
        time.sleep(0.2)
    if is_alive(pid):
        os.kill(pid, signal.SIGKILL)
    return True
