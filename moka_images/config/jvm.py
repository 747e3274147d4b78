"""JVM dependencies: the `jvm` section of a team manifest or a base line, and its lock.

`jvm.packages` names Maven packages at exact versions; `moka-images lock` resolves them with Maven on the host
into a lock of JARs pinned by sha256, and the build fetches exactly those JARs (image builds reach no Maven
repository). A lock is JSON, read with the declarations' YAML reader (JSON is YAML) so that its problems come
with lines, and checking it against its declaration needs neither Maven nor the network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from moka_images.config.validation import Document, Strict, problem, read
from moka_images.errors import ValidationProblem
from moka_images.models import JvmJar

LOCK_SCHEMA = 1
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"  # the one repository `lock` resolves from and the build fetches from
TEAM_LOCK_SUFFIX = ".jvm.lock"  # manifests/<team>/<name>.jvm.lock, beside <name>.yaml
_BASE_LOCK_RE = re.compile(r"^jvm-(?P<line>[^/]+)\.lock$")  # images/<family>/jvm-<line>.lock
_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")  # Maven's characters for a group, artifact or version
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CLASSIFIER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


# --- declaration ------------------------------------------------------------------------------------------
def _maven_id(value: str, what: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise problem(f"`{value}` is not a Maven {what}", "use letters, digits, . - and _")
    return value


def _exact_version(version: str) -> str:
    if any(c in version for c in "[](),"):
        raise problem(f"`{version}` is a version range, not one version", "pin one exact version")
    if version.upper() in ("LATEST", "RELEASE"):
        raise problem(f"`{version}` moves whenever a new version is published", "pin one exact version")
    if version.upper().endswith("-SNAPSHOT"):
        raise problem(f"`{version}` is a snapshot: its JARs change under the same name", "pin a released version")
    if "+" in version:
        raise problem(f"`{version}` is a dynamic version", "pin one exact version")
    return _maven_id(version, "version")


def split_coordinate(value: str) -> tuple[str, str, str]:
    """(group, artifact, version) of an exact `group:artifact:version`; a problem otherwise."""
    parts = value.split(":")
    if len(parts) == 2 or (len(parts) == 3 and not parts[2]):
        raise problem(f"`{value}` has no version", f"write `{parts[0]}:{parts[1]}:<version>`, one exact version")
    if len(parts) > 3:
        raise problem(f"`{value}` has more than group:artifact:version",
                      "packaging and classifiers are not supported: write group:artifact:version")
    if len(parts) != 3:
        raise problem(f"`{value}` is not a Maven coordinate", "write group:artifact:version, e.g. org.json:json:20231013")
    group, artifact, version = parts
    return _maven_id(group, "group id"), _maven_id(artifact, "artifact id"), _exact_version(version)


def _package(value: str) -> str:
    split_coordinate(value)
    return value


def _exclusion(value: str) -> str:
    parts = value.split(":")
    if len(parts) == 3:
        raise problem(f"`{value}`: an exclusion names no version", f"write `{parts[0]}:{parts[1]}`")
    if len(parts) != 2:
        raise problem(f"`{value}` is not group:artifact", "write group:artifact; the artifact may be *")
    group, artifact = parts
    if group == "*":
        raise problem(f"`{value}` excludes every group", "name the group; only the artifact may be *")
    _maven_id(group, "group id")
    if artifact != "*":
        _maven_id(artifact, "artifact id")
    return value


MavenPackage = Annotated[str, AfterValidator(_package)]
MavenExclusion = Annotated[str, AfterValidator(_exclusion)]


def _twice(items: Sequence[tuple[str, str]], what: str, fix: str) -> None:
    """A problem for the first key that comes twice, with both of its values where they differ."""
    seen: dict[str, str] = {}
    for key, value in items:
        if key in seen:
            both = f" ({seen[key]} and {value})" if value != seen[key] else ""
            raise problem(f"`{key}` is {what} twice{both}", fix)
        seen[key] = value


class JvmSpec(Strict):
    """Maven packages at exact versions (`group:artifact:version`), resolved on the host into a lock of JARs
    pinned by sha256; `exclude` names `group:artifact` (the artifact may be *) cut from every package's
    transitive tree."""

    packages: list[MavenPackage] = Field(min_length=1, max_length=50)
    exclude: list[MavenExclusion] = Field(default_factory=list, max_length=50)

    @field_validator("packages")
    @classmethod
    def _unique_packages(cls, value: list[str]) -> list[str]:
        _twice([(p.rpartition(":")[0], p.rpartition(":")[2]) for p in value], "declared", "keep one version")
        return value

    @field_validator("exclude")
    @classmethod
    def _unique_exclusions(cls, value: list[str]) -> list[str]:
        _twice([(e, e) for e in value], "excluded", "keep one")
        return value


# --- the lock ---------------------------------------------------------------------------------------------
def base_lock_name(line: str) -> str:
    """The lock of a base line, in its family's folder: `jvm-<line>.lock`."""
    return f"jvm-{line}.lock"


def base_lock_line(name: str) -> str | None:
    """The line a file in a family's folder is the lock of, or None if it is no base lock."""
    match = _BASE_LOCK_RE.fullmatch(name)
    return match["line"] if match else None


def team_lock_path(manifest: str) -> str:
    """The lock of a team manifest, beside it: `<name>.yaml` -> `<name>.jvm.lock`."""
    return manifest.removesuffix(".yaml") + TEAM_LOCK_SUFFIX


def _relock(info: ValidationInfo) -> str:
    image = (info.context or {}).get("image", "IMAGE")
    return f"run `moka-images lock {image}`"


def jar_file_fits(artifact: str, version: str, file: str) -> bool:
    """Whether `file` is a file Maven publishes for artifact:version: `a-v.jar` or, with a classifier,
    `a-v-classifier.jar`."""
    stem = f"{artifact}-{version}"
    if file == f"{stem}.jar":
        return True
    classifier = file.removeprefix(f"{stem}-").removesuffix(".jar")
    return file.startswith(f"{stem}-") and file.endswith(".jar") and bool(_CLASSIFIER_RE.fullmatch(classifier))


class LockedJar(Strict):
    """One JAR of a lock: its coordinate, its file name in the repository (and in SPARK_HOME/jars), its sha256."""

    coordinate: MavenPackage
    file: str
    sha256: str

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, value: str, info: ValidationInfo) -> str:
        if not _SHA256_RE.fullmatch(value):
            raise problem(f"`{value[:80]}` is not a sha256 (64 lowercase hex digits)", _relock(info))
        return value

    @model_validator(mode="after")
    def _fits(self, info: ValidationInfo) -> LockedJar:
        _, artifact, version = split_coordinate(self.coordinate)
        if not jar_file_fits(artifact, version, self.file):
            raise problem(f"`{self.file[:80]}` is not a file of {self.coordinate}",
                          f"expected {artifact}-{version}.jar; {_relock(info)}")
        return self

    @property
    def jar(self) -> JvmJar:
        """The JAR as a value."""
        group, artifact, version = split_coordinate(self.coordinate)
        return JvmJar(group, artifact, version, self.file, self.sha256)


class JvmLock(Strict):
    """An image's JVM lock: what it was resolved from, and every JAR the image adds to Spark's classpath."""

    lock_schema: int = Field(alias="schema")
    image: str
    base: str | None = None  # team images: the base image whose JARs win
    spark_version: str  # the Spark of the base line whose JARs win
    packages: list[str]  # the declaration's `jvm.packages`, as written
    exclude: list[str] = Field(default_factory=list)  # and its `jvm.exclude`
    repository: str  # where the build fetches the JARs
    jars: list[LockedJar]  # sorted by coordinate
    # What Maven resolved that the base already ships (in another version, maybe): left out, Spark's own wins.
    provided_by_base: list[MavenPackage] = Field(default_factory=list)

    @field_validator("lock_schema")
    @classmethod
    def _schema(cls, value: int, info: ValidationInfo) -> int:
        if value != LOCK_SCHEMA:
            raise problem(f"schema {value} is not the lock schema this moka-images reads ({LOCK_SCHEMA})",
                          _relock(info))
        return value


def new_lock(image: str, spec: JvmSpec, spark_version: str, base: str | None, jars: Sequence[JvmJar],
             provided: Sequence[JvmJar]) -> JvmLock:
    """The lock of an image from what Maven resolved: `jars` to add, `provided` left to the base."""
    return JvmLock.model_validate({
        "schema": LOCK_SCHEMA, "image": image, "base": base, "spark_version": spark_version,
        "packages": list(spec.packages), "exclude": list(spec.exclude), "repository": MAVEN_CENTRAL,
        "jars": [{"coordinate": j.coordinate, "file": j.file, "sha256": j.sha256} for j in sorted(jars)],
        "provided_by_base": sorted({j.coordinate for j in provided})})


def lock_text(lock: JvmLock) -> str:
    """The lock file's text: indented JSON in a fixed key order, `jars` and `provided_by_base` sorted, one
    trailing newline."""
    return json.dumps(lock.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2) + "\n"


@dataclass(frozen=True)
class LockContext:
    """What an image's lock must agree with: its declaration and, for a team image, its base."""

    image: str
    spec: JvmSpec
    declared_in: str  # the file (and line) declaring `jvm`, for a missing lock
    spark_version: str | None  # of the base line; None when it could not be read
    base: str | None = None  # team images
    base_jars: tuple[JvmJar, ...] = ()  # the base line's locked JARs (team images)


def check_lock(root: Path, shown: str, context: LockContext) -> tuple[JvmLock | None, list[ValidationProblem]]:
    """Read the lock at `shown` (root-relative) and check it against its declaration: the lock (None on any
    problem) and every problem, each naming the lock file, the field and, where known, the line."""
    fix = f"run `moka-images lock {context.image}`"
    path = root / shown
    if not path.exists():
        return None, [ValidationProblem(shown, "", f"missing: {context.declared_in} declares `jvm`",
                                        f"{fix} and commit the lock")]
    lock, doc, problems = read(JvmLock, path, shown, {"image": context.image})
    if lock is None or doc is None:  # whatever is wrong with it, writing it again mends it
        return None, [p if p.fix else ValidationProblem(p.file, p.field, p.message, fix, p.line) for p in problems]
    problems = _lock_problems(lock, shown, context, doc)
    return (None if problems else lock), problems


def _lock_problems(lock: JvmLock, shown: str, context: LockContext, doc: Document) -> list[ValidationProblem]:
    """Where a valid lock disagrees with its declaration, its base or itself: every place at once."""
    fix = f"run `moka-images lock {context.image}`"
    out: list[ValidationProblem] = []

    def stale(loc: tuple[str, ...], what: str) -> None:
        out.append(ValidationProblem(shown, ".".join(loc), f"the lock is out of date: {what}", fix, doc.line(loc)))

    declared: list[tuple[str, Any, Any]] = [
        ("image", lock.image, context.image),
        ("packages", lock.packages, list(context.spec.packages)), ("exclude", lock.exclude, list(context.spec.exclude))]
    if context.base is not None:
        declared.insert(1, ("base", lock.base, context.base))
    if context.spark_version is not None:
        declared.append(("spark_version", lock.spark_version, context.spark_version))
    for name, have, want in declared:
        if have != want:
            stale((name,), f"it has {json.dumps(have)}, the declaration {json.dumps(want)}")
    if lock.repository != MAVEN_CENTRAL:
        out.append(ValidationProblem(shown, "repository", f"JARs come from {MAVEN_CENTRAL} only", fix,
                                     doc.line(("repository",))))
    files: set[str] = set()
    versions: dict[tuple[str, str], str] = {}
    from_base = {(j.group, j.artifact): j.version for j in context.base_jars}
    for i, item in enumerate(lock.jars):
        jar, loc = item.jar, ("jars", str(i))
        if jar.file in files:
            stale((*loc, "file"), f"`{jar.file}` is locked twice")
        if versions.get((jar.group, jar.artifact), jar.version) != jar.version:
            stale((*loc, "coordinate"), f"{jar.group}:{jar.artifact} is locked at "
                  f"{versions[(jar.group, jar.artifact)]} and {jar.version}")
        if (jar.group, jar.artifact) in from_base:
            stale((*loc, "coordinate"), f"the base {context.base} now ships {jar.group}:{jar.artifact} "
                  f"({from_base[(jar.group, jar.artifact)]}), and its JARs win")
        files.add(jar.file)
        versions.setdefault((jar.group, jar.artifact), jar.version)
    return out
