"""`moka-images build`: carry out the plan. One buildx build per platform, pushed to the test registry, then one
index per image; images whose bases are known build in parallel; rolling tags move last, in test only."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from moka_images import log, metrics
from moka_images.adapters import buildx, git, maven, wheelhouse
from moka_images.adapters.registry import Registry
from moka_images.config.jvm import base_lock_line
from moka_images.config.manifests import BASE_FILE, BaseImage, TeamImage, load_declarations, team_files
from moka_images.config.settings import Settings
from moka_images.errors import ConfigError, PlanRefused
from moka_images.models import Digest, Environment, ImageRef, Platform
from moka_images.plan.graph import Action, BuildDecision, BuildTag, Plan
from moka_images.plan.promotion import Candidate, rolling_moves
from moka_images.recipes import team as team_recipe
from moka_images.stages import images, registries, repositories
from moka_images.stages.images import created_at, read_inventory
from moka_images.stages.planning import compute_plan

SOURCE_URL = "https://github.com/moka-images/moka-images"

# Shown the plan before anything is built: the command renders it; other callers pass nothing.
OnPlan = Callable[[Plan], None]


@dataclass(frozen=True)
class BuiltImage:
    """An image as it now stands in the test registry."""

    image: str
    version: str
    tag: str
    digest: Digest
    platforms: dict[Platform, Digest]
    action: Action
    selected: bool = True  # False: built or kept only as the base of a selected image

    def to_json(self) -> dict[str, object]:
        """Plain data for `--json`."""
        return {"image": self.image, "version": self.version, "tag": self.tag, "digest": str(self.digest),
                "platforms": {str(p): str(d) for p, d in self.platforms.items()}, "action": self.action.value,
                "selected": self.selected}


@dataclass(frozen=True)
class ArchBuild:
    """One platform of an image, pushed to the test registry under its per-arch tag (`build --platform`)."""

    image: str
    version: str
    tag: str  # `<build tag>-<arch>`
    platform: Platform
    digest: Digest
    action: Action  # BUILD, or SKIP when the per-arch tag was there already

    def to_json(self) -> dict[str, object]:
        """Plain data for `--json`."""
        return {"image": self.image, "version": self.version, "tag": self.tag, "platform": str(self.platform),
                "digest": str(self.digest), "action": self.action.value}


def build(settings: Settings, *, images: Sequence[str] = (), since_rev: str | None = None,
          jobs: int = 2, on_plan: OnPlan | None = None) -> list[BuiltImage]:
    """Build what the plan says, in dependency order; returns every image in scope with its digests."""
    plan = _checked_plan(settings, images, since_rev, on_plan)
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
    return _with_skipped(settings, client, plan, results)


def build_platform(settings: Settings, platform: Platform, *, images: Sequence[str] = (),
                   since_rev: str | None = None, jobs: int = 2,
                   on_plan: OnPlan | None = None) -> tuple[list[ArchBuild], list[str]]:
    """One platform of every image the plan builds whose base is known, pushed under its per-arch tag.

    For CI, one runner per platform, natively; `merge` then makes the indexes. An image built on a base that
    is itself rebuilt in this plan waits for that base's index: it is returned by name, and the next
    `build --platform` after the merge builds it. A per-arch tag already there is kept (a rerun builds nothing).
    """
    if platform not in settings.platform_list():
        raise ConfigError(f"{platform} is not one of the configured platforms ({', '.join(settings.platforms)})",
                          "platforms come from moka.yaml (or MOKA_PLATFORMS)")
    plan = _checked_plan(settings, images, since_rev, on_plan)
    declarations = load_declarations(settings.root)
    client = registries.client(settings, Environment.TEST)
    registries.login_tools(settings, Environment.TEST)
    revision = git.head_revision(settings.root)
    ready = [d for d in plan.by_action(Action.BUILD) if not d.pending
             and platform in _declared_platforms(settings, declarations.get(d.image))]

    def one(decision: BuildDecision) -> ArchBuild:
        assert decision.tag
        image, tag = declarations.get(decision.image), f"{decision.tag}-{platform.arch}"
        found = client.head_manifest(settings.repository(image.name), tag)
        if found is not None:
            return ArchBuild(image.name, image.version, tag, platform, found, Action.SKIP)
        with log.step(f"build {image.name} {decision.tag} {platform}", reason=decision.reason):
            digest = _build_arch(settings, image, decision, platform, _labels(settings, image, decision, revision))
        return ArchBuild(image.name, image.version, tag, platform, digest, Action.BUILD)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        built = list(pool.map(one, ready))
    return built, [d.image for d in plan.by_action(Action.BUILD) if d.pending]


def merge(settings: Settings, *, images: Sequence[str] = (), since_rev: str | None = None,
          on_plan: OnPlan | None = None) -> tuple[list[BuiltImage], list[str]]:
    """Make the index of each image whose base is known from its per-arch builds, and move its rolling tags.

    Returns every image in scope as it now stands, and the images still waiting for a base (build their
    platforms, then merge again). An image ready to merge but missing a platform is an error naming it.
    """
    plan = _checked_plan(settings, images, since_rev, on_plan)
    declarations = load_declarations(settings.root)
    client = registries.client(settings, Environment.TEST)
    registries.login_tools(settings, Environment.TEST)
    ready = [d for d in plan.by_action(Action.BUILD) if not d.pending]
    found = {d.image: {p: client.head_manifest(settings.repository(d.image), f"{d.tag}-{p.arch}")
                       for p in _declared_platforms(settings, declarations.get(d.image))} for d in ready}
    missing = [f"{name} {p}" for name, arches in found.items() for p, digest in arches.items() if digest is None]
    if missing:
        raise PlanRefused(f"not built yet: {', '.join(missing)}",
                          "run `moka-images build --platform OS/ARCH` for each missing platform, then merge again")
    results: dict[str, BuiltImage] = {}
    for d in ready:
        assert d.tag
        per_arch = {p: digest for p, digest in found[d.image].items() if digest is not None}
        with log.step(f"merge {d.image} {d.tag}"):
            index = _merge(settings, client, declarations.get(d.image), d.tag, per_arch)
        results[d.image] = BuiltImage(d.image, d.version, d.tag, index, per_arch, Action.BUILD, d.selected)
    return _with_skipped(settings, client, plan, results), [d.image for d in plan.by_action(Action.BUILD) if d.pending]


def _checked_plan(settings: Settings, images: Sequence[str], since_rev: str | None,
                  on_plan: OnPlan | None) -> Plan:
    plan = compute_plan(settings, since_rev=since_rev, images=images)
    refused = plan.by_action(Action.REFUSE)
    if refused:
        raise PlanRefused("the plan refuses: " + "; ".join(f"{d.image}: {d.reason}" for d in refused),
                          "fix what each reason says, then build again")
    if on_plan is not None:
        on_plan(plan)
    return plan


def _with_skipped(settings: Settings, client: Registry, plan: Plan,
                  results: dict[str, BuiltImage]) -> list[BuiltImage]:
    """The results, plus each image the plan skips that has a build (its rolling tags re-pointed at it), in plan
    order; their sizes as metrics."""
    for d in plan.decisions:
        if d.action is Action.SKIP and d.tag and d.image not in results:
            repo = settings.repository(d.image)
            manifest = client.get_manifest(repo, d.tag)
            # Test's rolling tags name the current declarations' build, even when another build moved them.
            moved = _move_rolling_tags(client, repo, d.image, d.tag, manifest.digest)
            if moved:
                log.info(f"{d.image}: {', '.join(moved)} pointed at another build; moved back to {d.tag}")
            results[d.image] = BuiltImage(d.image, d.version, d.tag, manifest.digest, manifest.platforms(),
                                          Action.SKIP, d.selected)
    out = [results[d.image] for d in plan.decisions if d.image in results]
    for r in out:
        for platform, digest in r.platforms.items():
            manifest = client.get_manifest(settings.repository(r.image), str(digest))
            metrics.set_gauge(metrics.IMAGE_SIZE, metrics.image_bytes(manifest.json), image=r.image,
                              version=r.version, platform=str(platform))
    return out


def _declared_platforms(settings: Settings, image: BaseImage | TeamImage) -> list[Platform]:
    return [p for p in settings.platform_list() if isinstance(image, BaseImage) or p in image.platforms]


def _labels(settings: Settings, image: BaseImage | TeamImage, decision: BuildDecision, revision: str) -> dict[str, str]:
    assert decision.tag and decision.base_digest
    base_name = image.base if isinstance(image, TeamImage) else f"{settings.mirror}/{settings.os_base.repository}"
    return {
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


def _build_one(settings: Settings, client: Registry, image: BaseImage | TeamImage, decision: BuildDecision,
               revision: str) -> BuiltImage:
    assert decision.tag and decision.base_digest  # settled: the base is known
    labels = _labels(settings, image, decision, revision)
    with log.step(f"build {image.name} {decision.tag}", reason=decision.reason):
        repo = settings.repository(image.name)
        # A per-arch tag is immutable and content-derived: one left by an interrupted build is this build.
        per_arch = {p: client.head_manifest(repo, f"{decision.tag}-{p.arch}")
                    or _build_arch(settings, image, decision, p, labels) for p in _declared_platforms(settings, image)}
        index = _merge(settings, client, image, decision.tag, per_arch)
    return BuiltImage(image.name, image.version, decision.tag, index, per_arch, Action.BUILD, decision.selected)


def _build_arch(settings: Settings, image: BaseImage | TeamImage, decision: BuildDecision, platform: Platform,
                labels: dict[str, str]) -> Digest:
    """Build one platform and push it under `<build tag>-<arch>`; returns its manifest digest."""
    assert decision.tag and decision.base_digest
    registry = settings.env(Environment.TEST).registry
    repositories.ensure_repository(settings, Environment.TEST, settings.repository(image.name))
    if isinstance(image, BaseImage):
        base = ImageRef(settings.mirror, settings.os_base.repository, digest=decision.base_digest)
    else:
        base = ImageRef(registry, settings.repository(image.base), digest=decision.base_digest)
    with tempfile.TemporaryDirectory(prefix="moka-context-") as tmp:
        context = Path(tmp)
        dockerfile = _prepare_context(settings, image, platform, context)
        args = {"BASE": str(base), **(image.build_args if isinstance(image, BaseImage) else {})}
        target = ImageRef(registry, settings.repository(image.name), f"{decision.tag}-{platform.arch}")
        with log.step(f"{image.name} {platform}"):
            return buildx.build_platform(context, platform, target, dockerfile=dockerfile, build_args=args,
                                         labels=labels, on_line=buildx.log_line(f"[{image.name} {platform.arch}]"))


def _merge(settings: Settings, client: Registry, image: BaseImage | TeamImage, tag: str,
           per_arch: dict[Platform, Digest]) -> Digest:
    """The index of the per-arch manifests (in platform order, so every merge of them is the same), tagged."""
    repo = settings.repository(image.name)
    index = images.write_index(client, repo, tag, [per_arch[p] for p in sorted(per_arch)])
    _move_rolling_tags(client, repo, image.name, tag, index)
    return index


def _prepare_context(settings: Settings, image: BaseImage | TeamImage, platform: Platform, context: Path) -> Path:
    """Lay out a build context for one platform; returns its Dockerfile.

    A base's context always has jars/ (empty for a line without JVM packages: its Dockerfile copies it either
    way); a team image's has it only when its lock adds JARs.
    """
    cache = settings.home / "cache"
    if isinstance(image, BaseImage):
        folder = settings.root / image.folder
        for item in folder.iterdir():
            if item.name != BASE_FILE and base_lock_line(item.name) is None:
                (shutil.copytree if item.is_dir() else shutil.copy2)(item, context / item.name)
        wheelhouse.copy_into(wheelhouse.resolve(image.python_pins, platform, cache), context / "wheels")
        (context / "jars").mkdir(exist_ok=True)
        _place_jars(settings, image, context / "jars")
        return context / image.matrix.dockerfile
    spec = image.manifest
    pins = list(spec.python.packages) if spec.python else []
    if pins:
        wheelhouse.copy_into(wheelhouse.resolve(pins, platform, cache), context / "wheels")
    has_jars = bool(image.lock and image.lock.jars)
    if has_jars:
        _place_jars(settings, image, context / "jars")
    files = team_files(settings.root, image)
    for src, dest in files:
        target = context / "app" / dest.relative_to("/opt/app")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    if spec.smoke:
        shutil.copy2(settings.root / image.folder / spec.smoke.job, context / "smoke.py")
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(team_recipe.render(
        apt_packages=list(spec.apt.packages) if spec.apt else [], has_wheels=bool(pins), has_jars=has_jars,
        has_files=bool(files), has_smoke=spec.smoke is not None, env=dict(spec.env or {})))
    return dockerfile


def _place_jars(settings: Settings, image: BaseImage | TeamImage, destination: Path) -> None:
    """The JARs of the image's JVM lock, fetched on the host (through a cache keyed by their sha256) and checked
    against it: the build itself reaches no Maven repository."""
    if image.lock is not None:
        maven.place_jars([j.jar for j in image.lock.jars], image.lock.repository, settings.home / "cache" / "jars",
                         destination, image.lock_path)


def _move_rolling_tags(client: Registry, repo: str, name: str, tag: str, index: Digest) -> list[str]:
    """In test, point `{version}` at the build, and `{major}.{minor}` and `latest` forward only.

    Returns the tags that moved.
    """
    build = BuildTag.parse(tag)
    assert build is not None
    manifest = client.get_manifest(repo, str(index))
    candidate = Candidate(name, index, build, created_at(manifest))
    moves, _ = rolling_moves(candidate, read_inventory(client, repo), own_version_follows=True)
    for move in moves:
        client.put_manifest(repo, move.tag, manifest.raw, manifest.media_type)
    return [m.tag for m in moves]

