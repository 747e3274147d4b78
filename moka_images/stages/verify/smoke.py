"""`moka-images smoke`: the Spark smoke suite on every platform of an image index in an environment."""

from __future__ import annotations

from urllib.parse import urlparse

from moka_images.adapters import s3
from moka_images.adapters.ecr import AwsAccess
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
from moka_images.smoke.suite import BUILTIN_JOBS, JobSpec, S3Target, s3a_job, team_job
from moka_images.stages import registries
from moka_images.stages.images import index_platforms


def _client_for(settings: Settings, environment: Environment, ref: ImageRef) -> Registry:
    if ref.registry == settings.env(environment).registry:
        registries.login_tools(settings, environment)  # docker pulls with the environment's login
        return registries.client(settings, environment)
    return RegistryClient(ref.registry)


def _stand_in(settings: Settings) -> bool:
    """Whether the smoke bucket is the local stack's S3 stand-in (an endpoint of its own), not S3 itself."""
    return settings.local_stack and settings.smoke_s3 is not None and settings.smoke_s3.endpoint is not None


def s3_target(settings: Settings) -> S3Target | None:
    """Where the S3A round trip writes, from the profile's `smoke_s3`; None when the profile sets none."""
    cfg = settings.smoke_s3
    if cfg is None:
        return None
    conf = [("spark.hadoop.fs.s3a.endpoint.region", settings.ecr.region)]
    if cfg.endpoint:
        conf.append(("spark.hadoop.fs.s3a.endpoint", cfg.endpoint))
        conf.append(("spark.hadoop.fs.s3a.connection.ssl.enabled", str(cfg.endpoint.startswith("https:")).lower()))
    if cfg.path_style:
        conf.append(("spark.hadoop.fs.s3a.path.style.access", "true"))
    # A stand-in takes any keys; on AWS the driver's own role (IRSA) is found by the image's credential chain,
    # which keys in the environment would come before.
    env = (("AWS_ACCESS_KEY_ID", "mokalocal"), ("AWS_SECRET_ACCESS_KEY", "mokalocal")) if _stand_in(settings) else ()
    host = urlparse(cfg.endpoint).hostname if cfg.endpoint else None
    return S3Target(f"s3a://{cfg.bucket}/{cfg.prefix.strip('/')}", tuple(conf), env,
                    host_network=host in ("127.0.0.1", "localhost", "::1"))


def builtin_jobs(settings: Settings) -> tuple[JobSpec, ...]:
    """The built-in suite, with the S3A round trip when the profile names a bucket for it."""
    target = s3_target(settings)
    return (*BUILTIN_JOBS, s3a_job(target)) if target else BUILTIN_JOBS


def jobs_for(settings: Settings, name: str) -> tuple[JobSpec, ...]:
    """The built-in suite, plus the team's own job when `name` is a team image whose manifest declares one."""
    image = load_declarations(settings.root).get(name)
    if isinstance(image, TeamImage) and image.manifest.smoke:
        spec = image.manifest.smoke
        # The build bakes the job into the image at SMOKE_PATH, whatever its name in the team folder.
        relative = team_recipe.SMOKE_PATH.removeprefix(team_recipe.APP_DIR + "/")
        return (*builtin_jobs(settings), team_job(relative, spec.expect, float(spec.timeout_seconds)))
    return builtin_jobs(settings)


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
    target = s3_target(settings) if any(j.name == "s3a" for j in jobs) else None
    if target is not None and settings.smoke_s3 and _stand_in(settings):  # a bucket on S3 itself must exist
        s3.ensure_bucket(AwsAccess(settings.ecr.region, settings.smoke_s3.endpoint), settings.smoke_s3.bucket)
    return run_suite(pinned, wanted, jobs, DockerRunner(), lambda image, p: jar.build_jar(image, p, cache),
                     workers=workers, s3=target)

