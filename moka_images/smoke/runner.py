"""The interface every smoke backend implements: fetch an image for a platform, run one Spark application."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from moka_images.models import ImageRef, Platform
from moka_images.smoke.results import AppOutput
from moka_images.smoke.suite import SparkApp

# Environment of every smoke driver: loopback only, as a driver pod's entrypoint expects it.
DRIVER_ENV: Mapping[str, str] = {
    "SPARK_DRIVER_BIND_ADDRESS": "127.0.0.1",
    "SPARK_LOCAL_IP": "127.0.0.1",
    "SPARK_USER": "spark",
}


class Runner(Protocol):
    """A place where smoke applications run: the local docker engine, or a Kubernetes cluster."""

    name: str

    def prepare(self, image: ImageRef, platform: Platform) -> None:
        """Make the per-platform image (pinned by digest) available; raise MokaError if it cannot be."""

    def run(self, app: SparkApp, image: ImageRef, platform: Platform, files: Mapping[str, bytes]) -> AppOutput:
        """Run `app` in `image` on `platform` with `files` at suite.PAYLOAD_DIR; kill it at `app.limit`."""


def spark_submit_args(app: SparkApp) -> list[str]:
    """spark-submit options and the application, without the `spark-submit` itself. Pure."""
    conf = dict(app.conf)
    args = ["--master", conf.pop("spark.master")] if "spark.master" in conf else []
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    return [*args, *application_args(app)]


def application_args(app: SparkApp) -> list[str]:
    """The application itself: its main class, resource and arguments. Pure."""
    return [*(["--class", app.main_class] if app.main_class else []), app.resource, *app.app_args]
