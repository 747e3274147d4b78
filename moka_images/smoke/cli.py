"""`moka-images smoke`: the Spark smoke suite on every platform of an image index in an environment."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.table import Table

from .. import attestations, log, registries
from ..adapters.registry import RegistryClient
from ..config.manifests import TeamImage, load_declarations
from ..config.settings import Settings, load_settings
from ..errors import ConfigError, GateFailed
from ..images import parse_spec, resolve
from ..models import Digest, Environment, ImageRef, Platform
from ..recipes import team as team_recipe
from . import jar
from .docker_runner import DockerRunner
from .harness import run_suite
from .report import junit_xml, predicate, timing_table
from .results import SuiteResult
from .suite import BUILTIN_JOBS, JobSpec, team_job


def parse_ref(text: str) -> ImageRef:
    """REGISTRY/REPOSITORY@sha256:... or REGISTRY/REPOSITORY:TAG."""
    name, digest, tag = text, None, None
    if "@" in text:
        name, digest = text.split("@", 1)
    elif ":" in text.rsplit("/", 1)[-1]:
        name, tag = text.rsplit(":", 1)
    registry, _, repository = name.partition("/")
    try:
        return ImageRef(registry, repository, tag, Digest(digest) if digest else None)
    except ValueError as exc:
        raise ConfigError(f"bad image reference {text!r}: {exc}", "give REGISTRY/REPOSITORY@sha256:<64 hex>") from None


def index_platforms(client: RegistryClient, ref: ImageRef) -> tuple[ImageRef, dict[Platform, Digest]]:
    """The ref pinned to its digest, and the per-platform digests of its index (or of its one manifest)."""
    manifest = client.get_manifest(ref.repository, str(ref.digest or ref.tag or "latest"))
    pinned = ref.with_digest(manifest.digest)
    if manifest.is_index:
        return pinned, manifest.platforms()
    config = json.loads(client.get_blob(ref.repository, manifest.blobs()[0]))
    return pinned, {Platform.parse(f"{config.get('os')}/{config.get('architecture')}"): manifest.digest}


def _client_for(settings: Settings, environment: Environment, ref: ImageRef) -> RegistryClient:
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


def render(result: SuiteResult) -> None:
    """Time per job and platform, then every failure with its driver log tail."""
    header, rows = timing_table(result)
    table = Table(*header, title=f"smoke {result.image}")
    for row in rows:
        table.add_row(*row)
    console = log.console()
    console.print(table)
    for run in result.runs:
        console.print(f"{run.platform} {run.digest}: {'passed' if run.passed else 'FAILED'} in {run.seconds:.1f}s")
        for job in run.jobs:
            if not job.passed and job.log_tail:
                console.print(f"[red]{job.describe()}[/]\n[dim]{job.log_tail}[/]", markup=True, highlight=False)
    for mismatch in result.mismatches:
        console.print(f"[red]mismatch: {mismatch.describe()}[/]")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `smoke`."""
    p = sub.add_parser("smoke", help="run Spark smoke jobs in each platform of an image, compare the answers")
    p.add_argument("image", nargs="?", metavar="IMAGE[:VERSION]", help="image name (latest version if none)")
    p.add_argument("--env", required=True, choices=[e.value for e in Environment],
                   help="environment whose registry holds the image")
    p.add_argument("--ref", help="a plain reference instead of IMAGE: REGISTRY/REPOSITORY@sha256:...")
    p.add_argument("--platform", action="append", type=Platform.parse, metavar="P",
                   help="only this platform (repeatable), default every platform of the index")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the result (the attestation predicate) here")
    p.add_argument("--parallel", type=int, default=1, metavar="N", help="platforms run at once (default 1)")
    p.add_argument("--attest", action="store_true",
                   help="attach the result to the index digest as a cosign attestation (the env's key)")
    p.set_defaults(func=_cmd_smoke)


def _cmd_smoke(args: argparse.Namespace) -> int:
    settings = load_settings(profile=args.profile)
    environment = Environment.parse(args.env)
    if bool(args.ref) == bool(args.image):
        raise ConfigError("give either IMAGE[:VERSION] or --ref REF")
    if args.ref:
        ref, jobs = parse_ref(args.ref), BUILTIN_JOBS
    else:
        jobs = jobs_for(settings, parse_spec(args.image)[0])  # the declarations are read before any registry
        ref = resolve(settings, environment, args.image).ref
    result = smoke(settings, environment, ref, jobs, args.platform, args.parallel)
    render(result)
    if args.junit:
        args.junit.write_text(junit_xml(result))
    if args.json:
        args.json.write_text(json.dumps(predicate(result), indent=2, sort_keys=True) + "\n")
    if args.attest:
        # A later result supersedes an earlier one, failed or not: promotion reads the newest.
        attestations.attest(settings, environment, result.image, attestations.Kind.SMOKE, predicate(result),
                            replace=True)
    if not result.passed:
        raise GateFailed("smoke failed:\n" + "\n".join(f"  - {line}" for line in result.failures()),
                         "the log tail of each failed job is printed above")
    return 0
