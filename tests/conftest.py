"""Shared fixtures for the integration and end-to-end tests: the real local stack, and images built once."""

from __future__ import annotations

import pytest

from moka_images.config.settings import Settings, load_settings
from moka_images.devstack.services import Daemon, is_ready
from moka_images.models import Environment
from moka_images.stages.build import BuiltImage, build


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The project's local profile."""
    return load_settings(profile="local")


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """The local stack must be up (`moka-images dev up`; scripts/test.sh does it): fail, never skip, if not."""
    down = [name for name, url in [("mirror", f"http://{settings.mirror}/v2/"),
                                   *[(e.value, f"http://{settings.env(e).registry}/v2/") for e in Environment],
                                   ("moto", f"{settings.ecr.endpoint}/moto-api/")]
            if not is_ready(Daemon(name, [], ready_url=url))]
    if down or not is_ready(Daemon("dockerd", [], ready_socket="/var/run/docker.sock")):
        pytest.fail(f"the local stack is not up (down: {', '.join(down) or 'dockerd'}); run `moka-images dev up`")
    return settings


@pytest.fixture(scope="session")
def built(stack: Settings) -> dict[str, BuiltImage]:
    """Every declared image built into the test registry once per session (a no-op when already built)."""
    return {image.image: image for image in build(stack)}
