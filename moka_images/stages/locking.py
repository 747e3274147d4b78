"""`moka-images lock`: resolve the JVM packages an image declares with Maven, on the host, into a lock beside its
declaration: every runtime JAR with its sha256, minus those of an artifact its base already ships.

What a base ships is the JARs of its line's pyspark wheel, and for a team image also its base line's locked JARs;
so bases are locked first. Image builds never resolve anything: they fetch what the lock names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from moka_images import log
from moka_images.adapters import maven, wheelhouse
from moka_images.config.jvm import MAVEN_CENTRAL, JvmLock, check_lock, lock_text, new_lock
from moka_images.config.manifests import BaseImage, Declarations, TeamImage, lock_context, read_declarations
from moka_images.config.settings import Settings
from moka_images.errors import ConfigError, ManifestError
from moka_images.models import ShippedJar
from moka_images.plan.jvm import split_provided


@dataclass(frozen=True)
class LockResult:
    """One image's lock as `lock` left it."""

    image: str
    path: str  # root-relative
    action: str  # "written" (new or changed), "unchanged" (resolved again, the same), "up to date" (not resolved)
    jars: tuple[str, ...]  # coordinates of the JARs the image adds
    provided_by_base: tuple[str, ...]  # resolved, but the base ships the artifact: left out

    def to_json(self) -> dict[str, object]:
        """Plain data for `--json`."""
        return {"image": self.image, "path": self.path, "action": self.action, "jars": list(self.jars),
                "provided_by_base": list(self.provided_by_base)}


def lock(settings: Settings, images: Sequence[str] = ()) -> list[LockResult]:
    """Resolve and write the lock of each image named (or, without names, of each image whose lock is missing
    or out of date), bases first; returns every image declaring `jvm` that was looked at, in that order.

    Any problem of the declarations other than in a lock stops it: fix those first (`moka-images check`).
    """
    root = settings.root
    reading = read_declarations(root)
    declarations = reading.declarations
    locks = {i.lock_path for i in declarations.images if i.jvm is not None}
    blocking = [p for p in reading.problems if p.file not in locks]
    if blocking:
        raise ManifestError(blocking)
    named = {declarations.get(name).name for name in images}
    for name in sorted(named):
        if declarations.get(name).jvm is None:
            raise ConfigError(f"{name} declares no `jvm` packages", "add `jvm.packages` to its declaration first")
    locked = {b.name: b.lock for b in declarations.bases if b.lock is not None}
    shipped: dict[str, list[ShippedJar]] = {}
    out = []
    for image in declarations.images:  # bases first
        if image.jvm is None or (named and image.name not in named):
            continue
        base = _base_of(declarations, image, locked)
        context = lock_context(image, base)
        assert context is not None
        current, _ = check_lock(root, image.lock_path, context)
        if current is not None and not named:
            out.append(_result(image, current, "up to date"))
            continue
        line = base or image
        assert isinstance(line, BaseImage)
        if line.name not in shipped:
            shipped[line.name] = _spark_jars(settings, line)
        extra = [ShippedJar(j.file, j.group, j.artifact) for j in context.base_jars]
        with log.step(f"lock {image.name}", path=image.lock_path):
            resolved = maven.resolve(context.spec.packages, context.spec.exclude, MAVEN_CENTRAL,
                                     settings.home / "cache" / "maven")
            add, provided = split_provided(resolved, [*shipped[line.name], *extra])
            fresh = new_lock(image.name, context.spec, line.line.spark_version,
                             image.base if isinstance(image, TeamImage) else None, add, provided)
            written = _write(root / image.lock_path, lock_text(fresh))
        if isinstance(image, BaseImage):
            locked[image.name] = fresh
        out.append(_result(image, fresh, "written" if written else "unchanged"))
    return out


def _base_of(declarations: Declarations, image: BaseImage | TeamImage,
             locked: dict[str, JvmLock]) -> BaseImage | None:
    """A team image's base, with the lock it has now (maybe written by this run); None for a base."""
    if isinstance(image, BaseImage):
        return None
    base = declarations.get(image.base)
    assert isinstance(base, BaseImage)
    if base.jvm is not None and base.name not in locked:
        raise ConfigError(f"the lock of {base.name}, the base of {image.name}, is missing or out of date",
                          f"run `moka-images lock {base.name} {image.name}`")
    return replace(base, lock=locked.get(base.name))


def _spark_jars(settings: Settings, line: BaseImage) -> list[ShippedJar]:
    """The JARs of the line's pyspark wheel (the same for every platform: pyspark is pure Python)."""
    house = wheelhouse.resolve(line.python_pins, settings.platform_list()[0], settings.home / "cache")
    wheel = next((name for name in house.files if name.startswith("pyspark-")), None)
    if wheel is None:
        raise ConfigError(f"the wheelhouse of {line.name} holds no pyspark wheel", "check the line's spark_version")
    return maven.spark_jars(house.directory / wheel)


def _write(path: Path, text: str) -> bool:
    """Write `text` to `path` unless it holds it already (under a temporary name first, so that a kill never
    leaves half a lock); whether it was written."""
    if path.is_file() and path.read_text() == text:
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _result(image: BaseImage | TeamImage, held: JvmLock, action: str) -> LockResult:
    return LockResult(image.name, image.lock_path, action, tuple(j.coordinate for j in held.jars),
                      tuple(held.provided_by_base))
