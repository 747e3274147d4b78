"""`moka-images smoke`: the Spark smoke suite on every platform of an image index in an environment."""

from __future__ import annotations

from moka_images.adapters.registry import Registry, RegistryClient
from moka_images.config.manifests import TeamImage, load_declarations
from moka_images.config.settings import Settings
from moka_images.errors import ConfigError
from moka_images.models import Environment, ImageRef, Platform
from moka_images.recipes import team as team_recipe
from moka_images.smoke import jar
from moka_images.smoke.docker_runner import DockerRunner
from moka_images.smoke.harness import run_suite
from moka_images.smoke.results import SuiteResult
from moka_images.smoke.suite import BUILTIN_JOBS, JobSpec, team_job
from moka_images.stages import registries
from moka_images.stages.images import index_platforms


def _client_for(settings: Settings, environment: Environment, ref: ImageRef) -> Registry:
    if ref.registry == settings.env(environment).registry:
        registries.login_tools(settings, environment)  # docker pulls with the environment's login
        return registries.client(settings, environment)
    return RegistryClient(ref.registry)


def jobs_for(settings: Settings, name: str) -> tuple[JobSpec, ...]:
    """The built-in suite, plus the team's own job when `name` is a team image whose manifest declares one."""
    image = load_declarations(settings.root).get(name)
    if isinstance(image, TeamImage) and image.manifest.smoke:
        spec = image.manifest.smoke
        # The build bakes the job into the image at SMOKE_PATH, whatever its name in the team folder.
        relative = team_recipe.SMOKE_PATH.removeprefix(team_recipe.APP_DIR + "/")
        return (*BUILTIN_JOBS, team_job(relative, spec.expect, float(spec.timeout_seconds)))
    return BUILTIN_JOBS


def smoke(settings: Settings, environment: Environment, ref: ImageRef, jobs: tuple[JobSpec, ...],
          platforms: list[Platform] | None = None, workers: int = 1) -> SuiteResult:
    """Resolve `ref` to its index and run the suite on its platforms (all of them, or `platforms`)."""
    client = _client_for(settings, environment, ref)
    pinned, found = index_platforms(client, ref)
    wanted = {p: d for p, d in found.items() if not platforms or p in platforms}
    missing = [str(p) for p in platforms or [] if p not in found]
    if missing or not wanted:
        raise ConfigError(f"{pinned} has no {', '.join(missing) or 'linux/amd64 or linux/arm64'} variant",
                          f"it has: {', '.join(str(p) for p in found) or 'none'}")
    cache = settings.home / "cache" / "smoke"
    return run_suite(pinned, wanted, jobs, DockerRunner(), lambda image, p: jar.build_jar(image, p, cache),
                     workers=workers)

