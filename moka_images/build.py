"""`moka-images build`: carry out the plan. One buildx build per platform, pushed to the test registry, then one
index per image; images whose bases are known build in parallel; rolling tags move last, in test only."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import semver
from rich.table import Table

from . import log, registries
from .adapters import buildx, git, wheelhouse
from .adapters.registry import RegistryClient
from .config.manifests import BaseImage, TeamImage, load_declarations, team_files
from .config.settings import Settings, load_settings
from .errors import PlanRefused
from .models import Digest, Environment, ImageRef, Platform
from .plan.graph import Action, BuildTag, Decision, rolling_tags
from .planning import compute_plan
from .recipes import team as team_recipe

SOURCE_URL = "https://github.com/moka-images/moka-images"


@dataclass(frozen=True)
class BuiltImage:
    """An image as it now stands in the test registry."""

    image: str
    version: str
    tag: str
    digest: Digest
    platforms: dict[Platform, Digest]
    action: Action

    def to_json(self) -> dict[str, object]:
        """Plain data for `--json`."""
        return {"image": self.image, "version": self.version, "tag": self.tag, "digest": str(self.digest),
                "platforms": {str(p): str(d) for p, d in self.platforms.items()}, "action": self.action.value}


def build(settings: Settings, *, images: Sequence[str] = (), since_rev: str | None = None,
          jobs: int = 2) -> list[BuiltImage]:
    """Build what the plan says, in dependency order; returns every image in scope with its digests."""
    plan = compute_plan(settings, since_rev=since_rev, images=images)
    refused = plan.by_action(Action.REFUSE)
    if refused:
        raise PlanRefused("the plan refuses: " + "; ".join(f"{d.image}: {d.reason}" for d in refused),
                          "fix what each reason says, then build again")
    log.console().print(plan.table())
    declarations = load_declarations(settings.root)
    client = registries.client(settings, Environment.TEST)
    registries.login_tools(settings, Environment.TEST)
    revision = git.head_revision(settings.root)
    results: dict[str, BuiltImage] = {}
    while ready := [d for d in plan.by_action(Action.BUILD) if not d.pending and d.image not in results]:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {d.image: pool.submit(_build_one, settings, client, declarations.get(d.image), d, revision)
                       for d in ready}
            for name, future in futures.items():
                results[name] = future.result()
                plan = plan.settle(name, results[name].digest)
    for d in plan.decisions:
        if d.action is Action.SKIP and d.tag and d.image not in results:
            manifest = client.get_manifest(settings.repository(d.image), d.tag)
            results[d.image] = BuiltImage(d.image, d.version, d.tag, manifest.digest, manifest.platforms(),
                                          Action.SKIP)
    return [results[d.image] for d in plan.decisions if d.image in results]


def _build_one(settings: Settings, client: RegistryClient, image: BaseImage | TeamImage, decision: Decision,
               revision: str) -> BuiltImage:
    assert decision.tag and decision.base_digest  # settled: the base is known
    repo = settings.repository(image.name)
    registry = settings.env(Environment.TEST).registry
    platforms = [p for p in settings.platform_list()
                 if isinstance(image, BaseImage) or p in image.platforms]
    if isinstance(image, BaseImage):
        base = ImageRef(settings.mirror, settings.os_base.repository, digest=decision.base_digest)
        base_name = f"{settings.mirror}/{settings.os_base.repository}"
    else:
        base = ImageRef(registry, settings.repository(image.base), digest=decision.base_digest)
        base_name = image.base
    labels = {
        "org.opencontainers.image.title": image.name,
        "org.opencontainers.image.version": image.version,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.source": SOURCE_URL,
        "org.opencontainers.image.created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "org.opencontainers.image.base.name": base_name,
        "org.opencontainers.image.base.digest": str(decision.base_digest),
        "dev.moka-images.build-tag": decision.tag,
        "dev.moka-images.own-key": decision.own_key,
    }
    per_arch: dict[Platform, Digest] = {}
    with log.step(f"build {image.name} {decision.tag}", reason=decision.reason):
        for platform in platforms:
            with tempfile.TemporaryDirectory(prefix="moka-context-") as tmp:
                context = Path(tmp)
                dockerfile = _prepare_context(settings, image, platform, context)
                args = {"BASE": str(base), **(image.build_args if isinstance(image, BaseImage) else {})}
                target = ImageRef(registry, repo, f"{decision.tag}-{platform.arch}")
                with log.step(f"{image.name} {platform}"):
                    per_arch[platform] = buildx.build_platform(
                        context, platform, target, dockerfile=dockerfile, build_args=args, labels=labels,
                        on_line=buildx.log_line(f"[{image.name} {platform.arch}]"))
        index = buildx.merge_index(ImageRef(registry, repo, decision.tag),
                                   [ImageRef(registry, repo, digest=d) for d in per_arch.values()])
        _move_rolling_tags(client, repo, image.version, index)
    return BuiltImage(image.name, image.version, decision.tag, index, per_arch, Action.BUILD)


def _prepare_context(settings: Settings, image: BaseImage | TeamImage, platform: Platform, context: Path) -> Path:
    """Lay out a build context for one platform; returns its Dockerfile."""
    cache = settings.home / "cache"
    if isinstance(image, BaseImage):
        folder = settings.root / image.folder
        for item in folder.iterdir():
            if item.name != "image.yaml":
                (shutil.copytree if item.is_dir() else shutil.copy2)(item, context / item.name)
        wheelhouse.copy_into(wheelhouse.resolve(image.python_pins, platform, cache), context / "wheels")
        return context / image.matrix.dockerfile
    spec = image.manifest
    pins = list(spec.python.packages) if spec.python else []
    if pins:
        wheelhouse.copy_into(wheelhouse.resolve(pins, platform, cache), context / "wheels")
    files = team_files(settings.root, image)
    for src, dest in files:
        target = context / "app" / dest.relative_to("/opt/app")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    if spec.smoke:
        shutil.copy2(settings.root / image.folder / spec.smoke.job, context / "smoke.py")
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(team_recipe.render(
        apt_packages=list(spec.apt.packages) if spec.apt else [], has_wheels=bool(pins), has_files=bool(files),
        has_smoke=spec.smoke is not None, env=dict(spec.env or {})))
    return dockerfile


def _move_rolling_tags(client: RegistryClient, repo: str, version: str, index: Digest) -> None:
    """In test, point `{version}` at the new build; `{major}.{minor}` and `latest` only if it is the newest."""
    built = [b for b in (BuildTag.parse(t) for t in client.list_tags(repo)) if b]
    newest = max((semver.Version.parse(b.version) for b in built), default=None)
    tags = rolling_tags(version)
    if newest is not None and semver.Version.parse(version) < newest:
        tags = [version]
    manifest = client.get_manifest(repo, str(index))
    for tag in tags:
        if client.head_manifest(repo, tag) != index:
            client.put_manifest(repo, tag, manifest.raw, manifest.media_type)


def results_table(results: Sequence[BuiltImage]) -> Table:
    """Image, version, index digest and per-arch digests."""
    table = Table(title="images in test", title_justify="left")
    for column in ("image", "version", "action", "index digest", "per-arch digests"):
        table.add_column(column, overflow="fold")
    for r in results:
        arches = "\n".join(f"{p.arch}: {d.short}" for p, d in sorted(r.platforms.items()))
        table.add_row(r.image, r.version, r.action.value, r.digest.value[:19] + "…", arches)
    return table


def register(sub: argparse._SubParsersAction) -> None:
    """Add `build`."""
    parser = sub.add_parser("build", help="build what the plan says into the test registry")
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="only these images (and the bases they need)")
    parser.add_argument("--since", metavar="REV", help="only images whose inputs changed since this revision")
    parser.add_argument("--jobs", type=int, default=2, help="images built at once (default 2)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    results = build(load_settings(profile=args.profile), images=args.images, since_rev=args.since, jobs=args.jobs)
    if args.json:
        sys.stdout.write(json.dumps([r.to_json() for r in results], indent=2) + "\n")
    else:
        log.console().print(results_table(results))
    return 0
