"""The default smoke backend: the local docker engine, one container per Spark application (adapter).

Containers get `--network none`: a local-master Spark driver needs only loopback, and a smoke job must not
reach anything else. Their host name is mapped to 127.0.0.1, or the JVM waits on DNS it cannot reach.
Files are copied in with `docker cp` (no bind mount), so a remote engine works too.

Under emulation (qemu-user), the JVM's C2 compiler costs more than it saves: C1 only (`TieredStopAtLevel=1`)
makes Spark start about three times faster there. It changes speed, not behaviour; native runs get no flags.
qemu-user's other weakness, a fork of the JVM that deadlocks before its exec, is watched for from the host while
an emulated application runs (stuck_forks.py).
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from moka_images import log
from moka_images.adapters import run
from moka_images.adapters.host import native_platform
from moka_images.errors import CommandFailed, ServiceError
from moka_images.models import ImageRef, Platform
from moka_images.smoke.results import AppOutput
from moka_images.smoke.runner import DRIVER_ENV, application_args, spark_submit_args
from moka_images.smoke.stuck_forks import ForkWatch
from moka_images.smoke.suite import PAYLOAD_DIR, PROPERTIES_FILE, SparkApp


def container_args(app: SparkApp) -> list[str]:
    """The container's command: `driver ...` for the image's Kubernetes entrypoint, else `spark-submit ...`.

    Driver mode gets what Spark on Kubernetes gives a driver pod: its settings in a properties file
    (suite.properties_file, copied in with the payload), then the application; the entrypoint itself adds the
    bind address, so passing `--deploy-mode client` again is harmless (the last one wins). Pure.
    """
    if app.via_entrypoint:
        return ["driver", "--properties-file", f"{PAYLOAD_DIR}/{PROPERTIES_FILE}", "--deploy-mode", "client",
                *application_args(app)]
    return ["spark-submit", *spark_submit_args(app)]


HOSTNAME = "moka-smoke"
EMULATED_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"


LABEL = "moka-images.smoke"


def create_argv(app: SparkApp, image: ImageRef, platform: Platform, name: str, *, emulated: bool,
                run_id: str) -> list[str]:
    """`docker create` for one application, pinned to the per-platform digest, labelled with the run. Pure.

    An application that must reach a service on the host's loopback (the local S3 stand-in) shares the host's
    network; every other one has none.
    """
    network = ["--network", "host"] if app.host_network else [
        "--network", "none", "--hostname", HOSTNAME, "--add-host", f"{HOSTNAME}:127.0.0.1"]
    argv = ["docker", "create", "--name", name, "--platform", str(platform), *network,
            "--label", f"{LABEL}={run_id}"]
    env = {**DRIVER_ENV, **dict(app.env), **({"JAVA_TOOL_OPTIONS": EMULATED_JAVA_OPTIONS} if emulated else {})}
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    return [*argv, str(image), *container_args(app)]


class DockerRunner:
    """Runs smoke applications as containers on the local engine, through qemu for a foreign arch.

    Its containers carry the label `moka-images.smoke=<run_id>`, so a run's leftovers can be found.
    """

    name = "docker"

    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:12]

    def prepare(self, image: ImageRef, platform: Platform) -> None:
        """Pull the per-platform image by digest (a no-op when the engine already has it)."""
        present = run.call(["docker", "image", "inspect", "--format", "{{.Architecture}}", str(image)],
                           check=False, quiet=True)
        if present.returncode == 0:
            return
        run.call(["docker", "pull", "--platform", str(platform), str(image)],
                 hint="is the registry up and are you logged in? `moka-images dev up`")

    def run(self, app: SparkApp, image: ImageRef, platform: Platform, files: Mapping[str, bytes]) -> AppOutput:
        """Create the container, copy the files in, start it attached; a timer kills it at `app.limit`."""
        name = f"moka-smoke-{uuid.uuid4().hex[:12]}"
        emulated = platform != native_platform()
        run.call(create_argv(app, image, platform, name, emulated=emulated, run_id=self.run_id), quiet=True)
        try:
            if files:
                self._copy_in(name, files)
            killed = threading.Event()

            def kill() -> None:
                killed.set()
                run.call(["docker", "kill", name], check=False, quiet=True)

            def reaped(pid: int) -> None:
                log.warn(f"{platform} {app.name}: killed process {pid}, a fork of the JVM stuck in qemu before exec")

            timer = threading.Timer(app.limit, kill)
            start = time.monotonic()
            timer.start()
            try:
                with ForkWatch(lambda: _main_pid(name), reaped) if emulated else contextlib.nullcontext():
                    # The timer ends the container; this outer limit only guards against a wedged engine.
                    done = run.call(["docker", "start", "--attach", name], check=False, timeout=app.limit + 120)
            except CommandFailed as exc:
                raise ServiceError(f"the docker engine did not stop container {name} after its limit",
                                   "check `docker ps` and the engine's health") from exc
            finally:
                timer.cancel()
            seconds = round(time.monotonic() - start, 2)
            return AppOutput(done.returncode, done.stdout, done.stderr, seconds, killed.is_set())
        finally:
            run.call(["docker", "rm", "--force", name], check=False, quiet=True)

    @staticmethod
    def _copy_in(name: str, files: Mapping[str, bytes]) -> None:
        with tempfile.TemporaryDirectory(prefix="moka-smoke-") as tmp:
            stage = Path(tmp)
            stage.chmod(0o755)  # the image's non-root user must read what root copies in
            for file_name, data in files.items():
                target = stage / file_name
                target.write_bytes(data)
                target.chmod(0o644)
            run.call(["docker", "cp", f"{stage}/.", f"{name}:{PAYLOAD_DIR}"], quiet=True)


def _main_pid(container: str) -> int | None:
    """The host pid of a running container's main process, if it runs (a local engine's pid namespace)."""
    done = run.call(["docker", "inspect", "--format", "{{.State.Pid}}", container], check=False, quiet=True)
    pid = done.stdout.strip()
    return int(pid) if done.returncode == 0 and pid.isdigit() and pid != "0" else None
