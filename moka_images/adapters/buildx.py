"""docker buildx through python-on-whales: one build per platform, pushed to the registry by a per-arch tag.

The engine's default `docker` driver cannot push by digest alone, so each platform build is pushed under a
content-derived per-arch tag (`<build tag>-<arch>`, immutable like the build tag) and the index is then made
from the digests by `stages.images.write_index`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from moka_images import log
from moka_images.adapters import run
from moka_images.errors import CommandFailed, ServiceError
from moka_images.models import Digest, ImageRef, Platform


def _client() -> DockerClient:
    return DockerClient(client_call=[run.require("docker")])


def engine_version() -> str:
    """Server version of the docker engine, or a ServiceError saying how to start it."""
    try:
        server = _client().version().server
        return str(server.version if server else "unknown")
    except DockerException as exc:
        raise ServiceError("the docker engine does not answer", "start the stack: `moka-images dev up`") from exc


def buildx_version() -> str:
    """`docker buildx version`, or a ToolMissingError."""
    return run.call(["docker", "buildx", "version"], quiet=True).stdout.strip()


def build_platform(
    context: Path,
    platform: Platform,
    target: ImageRef,
    *,
    dockerfile: Path | None = None,
    build_args: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> Digest:
    """Build `context` for one platform and push it to `target` (a tag); returns the pushed manifest digest."""
    with tempfile.TemporaryDirectory(prefix="moka-buildx-") as tmp:
        meta = Path(tmp) / "metadata.json"
        try:
            lines = _client().buildx.build(
                context,
                file=dockerfile,
                platforms=[str(platform)],
                build_args=dict(build_args or {}),
                labels=dict(labels or {}),
                network="host",
                provenance=False,
                output={"type": "image", "name": str(target), "push": "true"},
                metadata_file=meta,
                progress="plain",
                stream_logs=True,
            )
            tail: list[str] = []
            for line in lines if isinstance(lines, Iterator) else []:
                tail = (tail + [line.rstrip()])[-40:]
                if on_line:
                    on_line(line.rstrip())
        except DockerException as exc:
            output = (exc.stderr or exc.stdout or "").strip().splitlines()
            raise CommandFailed(["docker", "buildx", "build", str(context)], exc.return_code,
                                "\n".join(output[-25:])) from exc
        digest = json.loads(meta.read_text()).get("containerimage.digest")
    if not digest:
        raise ServiceError(f"buildx reported no digest for {target} ({platform})")
    return Digest(digest)


def log_line(prefix: str) -> Callable[[str], None]:
    """A progress callback that shows buildx step lines (`#N ...`) under a prefix."""
    def show(line: str) -> None:
        if line.startswith("#") and (" DONE " in line or " CACHED" in line or "ERROR" in line):
            log.info(f"{prefix} {line}")
    return show
