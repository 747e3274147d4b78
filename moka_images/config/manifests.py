"""Declarations: the curated base images (images/<family>/image.yaml) and team images (manifests/<team>/*.yaml).

Team manifests are data, never code: the build generates the Dockerfile from them, so every string that can
reach a Dockerfile is held to a charset that needs no quoting, and every path stays inside the team's folder.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, TypeVar

import semver
from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from moka_images.config.jvm import (
    TEAM_LOCK_SUFFIX,
    JvmLock,
    JvmSpec,
    LockContext,
    base_lock_line,
    base_lock_name,
    check_lock,
    team_lock_path,
)
from moka_images.config.validation import Strict, problem, read
from moka_images.errors import ConfigError, ManifestError, ValidationProblem
from moka_images.models import InputFile, Platform

IMAGES_DIR = "images"
MANIFESTS_DIR = "manifests"
BASE_FILE = "image.yaml"
APP_DIR = PurePosixPath("/opt/app")
RESERVED_DEST = ".moka"  # the build puts the smoke job there
PLATFORMS = ("linux/amd64", "linux/arm64")
# The runtime owns these: a team that changes them breaks Spark, Python or the loader, or smuggles code in.
RESERVED_ENV = frozenset({
    "PATH", "HOME", "USER", "SHELL", "JAVA_HOME", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
    "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONSAFEPATH", "PYTHONINSPECT",
})
RESERVED_ENV_PREFIXES = ("LD_", "SPARK_", "PYSPARK_", "MOKA_")
BASE_PROVIDED_PIP = ("pyspark", "py4j")  # installed by the base image, at the line's version

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}[a-z0-9]$")
_IMAGE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9./-]{0,80}$")
_LINE_RE = re.compile(r"^\d+\.\d+$")
_SPARK_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
_PEP503_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_PIP_VERSION_RE = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")
_APT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_APT_VERSION_RE = re.compile(r"^(\d+:)?\d[A-Za-z0-9.+~-]*$")
_PATH_RE = re.compile(r"^[A-Za-z0-9._/-]+$")
_ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_ENV_VALUE_RE = re.compile(r"^[A-Za-z0-9 _.,:/=+@%~^*-]*$")
_TEXT_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f"\\`$]')
MAX_ENV_VALUE = 512
MAX_TEXT = 200


# --- scalar checks ---------------------------------------------------------------------------------------
def _name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise problem(f"`{value}` is not a valid name",
                      "use 2-41 lowercase letters, digits and dashes, starting with a letter, not ending in a dash")
    return value


def _semver(value: str) -> str:
    try:
        parsed = semver.Version.parse(value)
    except (ValueError, TypeError):
        raise problem(f"`{value}` is not a semantic version", "write MAJOR.MINOR.PATCH, e.g. 1.0.0") from None
    if parsed.build or len(value) > 64:
        raise problem(f"`{value}` cannot be part of an image tag", "drop the `+build` part; keep it under 64 chars")
    return value


def _text(value: str) -> str:
    if len(value) > MAX_TEXT:
        raise problem(f"too long ({len(value)} characters, at most {MAX_TEXT})")
    bad = _TEXT_FORBIDDEN.search(value)
    if bad:
        raise problem(f"character {bad.group()!r} is not allowed", "one line, without quotes, backslash, ` or $")
    return value


def _rel_path(value: str) -> str:
    """A relative path with a plain charset and no way up."""
    if value.startswith("/"):
        raise problem(f"`{value}` is absolute", "give a path relative to the manifest's folder")
    parts = value.split("/")
    if ".." in parts:
        raise problem(f"`{value}` leaves its folder through `..`", "keep every path inside the team's folder")
    if not _PATH_RE.fullmatch(value) or len(value) > 200:
        raise problem(f"`{value}` has characters that are not allowed in a path", "use letters, digits, . _ - and /")
    if any(p in ("", ".") or p.startswith("-") for p in parts):
        raise problem(f"`{value}` is not a clean path", "no empty parts, `.` parts or parts starting with `-`")
    return value


def _pip_pin(value: str) -> str:
    if "\n" in value or "://" in value or "@" in value or value.startswith(("-", "/", ".")) or " " in value:
        raise problem(f"`{value.strip()}` is not a pin: URLs, paths, options and spaces are not allowed",
                      "write `name==version`")
    if ";" in value or "[" in value:
        raise problem(f"`{value}`: markers and extras are not allowed", "write `name==version`")
    name, sep, version = value.partition("==")
    if not sep:
        if re.search(r"[<>~!=]", value):
            raise problem(f"`{value}` is a range, not an exact pin", "pin one version: `name==version`")
        raise problem(f"`{value}` is not pinned", f"write `{value}==<version>`")
    normal = re.sub(r"[-_.]+", "-", name).lower()
    if not _PEP503_RE.fullmatch(normal):
        raise problem(f"`{name}` is not a package name", "use letters, digits and - _ .")
    if normal != name:
        raise problem(f"`{name}` is not written in its normalized (PEP 503) form", f"write `{normal}=={version}`")
    if not _PIP_VERSION_RE.fullmatch(version):
        raise problem(f"`{version}` is not a plain release version", "e.g. 2.2.3, 1.0rc1 or 1.0.post1")
    if name in BASE_PROVIDED_PIP:
        raise problem(f"`{name}` comes from the base image", "remove it; pick the Spark line with `base`")
    return value


def _apt_pin(value: str) -> str:
    name, sep, version = value.partition("=")
    if not _APT_NAME_RE.fullmatch(name):
        raise problem(f"`{name}` is not a Debian package name", "use lowercase letters, digits, + - and .")
    if not sep:
        raise problem(f"`{value}` is not pinned", f"write `{value}=<version>` (see `apt-cache policy {value}`)")
    if not _APT_VERSION_RE.fullmatch(version):
        raise problem(f"`{version}` is not a Debian version", "copy it from `apt-cache policy <package>`")
    return value


def _platform(value: str) -> str:
    if value not in PLATFORMS:
        near = difflib.get_close_matches(value, PLATFORMS, n=1, cutoff=0.5)
        raise problem(f"unsupported platform `{value}`",
                      f"did you mean `{near[0]}`?" if near else f"use {' or '.join(PLATFORMS)}")
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME_RE.fullmatch(value):
        raise problem(f"`{value}` is not a valid variable name", "use A-Z, 0-9 and _, not starting with a digit")
    if value in RESERVED_ENV or value.startswith(RESERVED_ENV_PREFIXES):
        raise problem(f"`{value}` is reserved for the runtime",
                      "pick another name; configure Spark with --conf and Python with your job's code")
    return value


def _env_value(value: str) -> str:
    if len(value) > MAX_ENV_VALUE:
        raise problem(f"value too long ({len(value)} characters, at most {MAX_ENV_VALUE})")
    if not _ENV_VALUE_RE.fullmatch(value):
        bad = next(c for c in value if not _ENV_VALUE_RE.fullmatch(c))
        raise problem(f"character {bad!r} is not allowed in a value",
                      "one line of letters, digits, spaces and _ . , : / = + @ % ~ ^ * -")
    return value


Name = Annotated[str, AfterValidator(_name)]
SemVer = Annotated[str, AfterValidator(_semver)]
Text = Annotated[str, Field(min_length=1), AfterValidator(_text)]
RelPath = Annotated[str, AfterValidator(_rel_path)]
PipPin = Annotated[str, AfterValidator(_pip_pin)]
AptPin = Annotated[str, AfterValidator(_apt_pin)]
PlatformName = Annotated[str, AfterValidator(_platform)]
EnvName = Annotated[str, AfterValidator(_env_name)]
EnvValue = Annotated[str, AfterValidator(_env_value)]


def _inside(info: ValidationInfo, value: str, *, directory_ok: bool) -> str:
    """With a folder in the context, the path must exist there and resolve inside it (symlinks included)."""
    folder: Path | None = (info.context or {}).get("folder")
    if folder is None:
        return value
    shown = (info.context or {}).get("shown_folder", str(folder))
    try:
        return _check_inside(folder, shown, value, directory_ok=directory_ok)
    except (RuntimeError, OSError):  # Python 3.11's resolve() raises RuntimeError on a symlink loop
        raise problem(f"`{value}` holds a symlink loop or an entry that cannot be read",
                      "remove the loop; keep plain files and directories") from None


def _check_inside(folder: Path, shown: str, value: str, *, directory_ok: bool) -> str:
    target = folder / value
    if not os.path.lexists(target):
        raise problem(f"`{value}` does not exist in {shown}/", "add the file or fix the path")
    real = folder.resolve()
    if not target.resolve().is_relative_to(real):
        raise problem(f"`{value}` is a symlink that leads outside {shown}/", f"copy the file into {shown}/")
    if target.is_dir():
        if not directory_ok:
            raise problem(f"`{value}` is a directory", "name a file")
        for path in _walk(target):
            if path.is_symlink() and not path.resolve().is_relative_to(real):
                raise problem(f"`{path.relative_to(folder).as_posix()}` is a symlink that leads outside {shown}/",
                              f"copy the file into {shown}/")
            if not path.is_file():
                raise problem(f"`{path.relative_to(folder).as_posix()}` is not a regular file",
                              "only files and directories can be copied")
    elif not target.is_file():
        raise problem(f"`{value}` is not a regular file", "name a file or a directory")
    return value


def _walk(directory: Path) -> Iterator[Path]:
    """Every entry below `directory` that is not a real directory, sorted; symlinked directories are not entered.

    Bytecode caches are left out: running a job locally must not change what the image is built from.
    """
    for entry in sorted(directory.iterdir()):
        if entry.name == "__pycache__":
            continue
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry)
        else:
            yield entry


# --- team manifests --------------------------------------------------------------------------------------
class PythonSpec(Strict):
    """pip packages, each an exact pin `name==version`, installed offline from the wheelhouse."""

    packages: list[PipPin] = Field(default_factory=list, max_length=100)

    @field_validator("packages")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        _no_duplicates([p.partition("==")[0] for p in value], "pinned")
        return value


class AptSpec(Strict):
    """Debian packages, each pinned `name=version`."""

    packages: list[AptPin] = Field(default_factory=list, max_length=100)

    @field_validator("packages")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        _no_duplicates([p.partition("=")[0] for p in value], "pinned")
        return value


class FileSpec(Strict):
    """A file or directory from the team's folder, copied to /opt/app/<dest>."""

    src: RelPath
    dest: RelPath

    @field_validator("dest")
    @classmethod
    def _dest(cls, value: str) -> str:
        if value.split("/")[0] == RESERVED_DEST:
            raise problem(f"`{value}`: {APP_DIR}/{RESERVED_DEST}/ is reserved for moka-images", "pick another dest")
        return value

    @field_validator("src")
    @classmethod
    def _src(cls, value: str, info: ValidationInfo) -> str:
        return _inside(info, value, directory_ok=True)

    @property
    def target(self) -> PurePosixPath:
        """Where it lands in the image."""
        return APP_DIR / self.dest


class SmokeSpec(Strict):
    """The team's smoke job: a PySpark script run with spark-submit in the built image."""

    job: RelPath
    timeout_seconds: int = Field(default=600, ge=10, le=1800)
    expect: Text | None = None

    @field_validator("job")
    @classmethod
    def _job(cls, value: str, info: ValidationInfo) -> str:
        if not value.endswith(".py"):
            raise problem(f"`{value}` is not a Python file", "point `job` at a .py file")
        return _inside(info, value, directory_ok=False)


class TeamManifest(Strict):
    """One team image, as declared in manifests/<team>/<name>.yaml."""

    name: Name
    team: Name
    version: SemVer
    base: str
    description: Text
    platforms: list[PlatformName] = Field(default_factory=lambda: list(PLATFORMS), min_length=1)
    python: PythonSpec = Field(default_factory=PythonSpec)
    apt: AptSpec = Field(default_factory=AptSpec)
    files: list[FileSpec] = Field(default_factory=list, max_length=50)
    env: dict[EnvName, EnvValue] = Field(default_factory=dict, max_length=50)
    smoke: SmokeSpec | None = None
    jvm: JvmSpec | None = None

    @field_validator("team")
    @classmethod
    def _team(cls, value: str, info: ValidationInfo) -> str:
        folder = (info.context or {}).get("team")
        if folder is not None and value != folder:
            raise problem(f"team `{value}` does not match the folder `{MANIFESTS_DIR}/{folder}/`",
                          f"set `team: {folder}` or move the file to {MANIFESTS_DIR}/{value}/")
        return value

    @field_validator("base")
    @classmethod
    def _base(cls, value: str) -> str:
        # Whether it is an approved base is a question about the whole graph: plan.graph.graph_problems.
        if not _IMAGE_NAME_RE.fullmatch(value):
            raise problem(f"`{_shorten(value)}` is not an image name", "name an approved base, e.g. spark-3.5")
        return value

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, value: list[str]) -> list[str]:
        _no_duplicates(value, "listed")
        return value

    @field_validator("files")
    @classmethod
    def _dests(cls, value: list[FileSpec]) -> list[FileSpec]:
        _no_duplicates([f.dest for f in value], "a destination")
        return value

    @property
    def image(self) -> str:
        """The image's name: `<team>/<name>`."""
        return f"{self.team}/{self.name}"


def _shorten(value: str) -> str:
    return value if len(value) <= 60 else value[:57] + "..."


def _no_duplicates(items: list[str], what: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise problem(f"`{item}` is {what} twice", "keep one")
        seen.add(item)


# --- base images -----------------------------------------------------------------------------------------
class SparkLine(Strict):
    """One line of the Spark matrix; its image is `<family>-<line>`."""

    line: str
    version: SemVer
    spark_version: str
    jvm: JvmSpec | None = None  # JARs added to Spark's own, pinned by the line's lock

    @field_validator("line")
    @classmethod
    def _line(cls, value: str) -> str:
        if not _LINE_RE.fullmatch(value):
            raise problem(f"`{value}` is not a Spark line", "write MAJOR.MINOR in quotes, e.g. \"3.5\"")
        return value

    @model_validator(mode="after")
    def _matches(self) -> SparkLine:
        if not _SPARK_VERSION_RE.fullmatch(self.spark_version):
            raise problem(f"spark_version `{self.spark_version}` is not X.Y.Z", "e.g. 3.5.7")
        if not self.spark_version.startswith(self.line + "."):
            raise problem(f"spark_version {self.spark_version} is not on line {self.line}",
                          f"use a {self.line}.x release or fix `line`")
        return self


class BaseMatrix(Strict):
    """A family of curated base images built from one Dockerfile: images/<family>/image.yaml."""

    name: Name
    description: Text
    dockerfile: RelPath = "Dockerfile"
    lines: list[SparkLine] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _folder(cls, value: str, info: ValidationInfo) -> str:
        folder: Path | None = (info.context or {}).get("folder")
        if folder is not None and value != folder.name:
            raise problem(f"name `{value}` does not match the folder `{IMAGES_DIR}/{folder.name}/`",
                          f"set `name: {folder.name}`")
        return value

    @field_validator("dockerfile")
    @classmethod
    def _dockerfile(cls, value: str, info: ValidationInfo) -> str:
        return _inside(info, value, directory_ok=False)

    @field_validator("lines")
    @classmethod
    def _unique(cls, value: list[SparkLine]) -> list[SparkLine]:
        _no_duplicates([line.line for line in value], "declared")
        return value


# --- loaded declarations ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class BaseImage:
    """One curated base image: a line of a matrix, e.g. spark-3.5 (built on the OS base)."""

    name: str
    folder: str  # root-relative, e.g. images/spark
    source: str  # the declaring file, e.g. images/spark/image.yaml
    matrix: BaseMatrix
    line: SparkLine
    lock: JvmLock | None = None  # read once the line's `jvm` and its lock are checked

    @property
    def version(self) -> str:
        """The image's version."""
        return self.line.version

    @property
    def jvm(self) -> JvmSpec | None:
        """The line's JVM packages."""
        return self.line.jvm

    @property
    def lock_path(self) -> str:
        """Root-relative path of the line's JVM lock."""
        return f"{self.folder}/{base_lock_name(self.line.line)}"

    @property
    def dockerfile(self) -> str:
        """Root-relative path of the Dockerfile."""
        return f"{self.folder}/{self.matrix.dockerfile}"

    @property
    def build_args(self) -> dict[str, str]:
        """The only build arguments of this line (the builder adds BASE, the OS base by digest)."""
        return {"SPARK_VERSION": self.line.spark_version}

    @property
    def python_pins(self) -> list[str]:
        """What the wheelhouse resolves for this line."""
        return [f"pyspark=={self.line.spark_version}"]

    def key_declaration(self) -> dict[str, Any]:
        """What the content key sees of the declaration: everything but the version."""
        return {"family": self.matrix.name, "description": self.matrix.description,
                "dockerfile": self.matrix.dockerfile,
                **self.line.model_dump(mode="json", exclude=_unkeyed(self.line.jvm))}


@dataclass(frozen=True)
class TeamImage:
    """One team image, e.g. data-eng/etl-jobs, built on a base image."""

    manifest: TeamManifest
    folder: str  # root-relative, e.g. manifests/data-eng
    source: str  # e.g. manifests/data-eng/etl-jobs.yaml
    lines: Mapping[str, int] = field(default_factory=dict, compare=False)  # each top-level key's line in source
    lock: JvmLock | None = None  # read once its `jvm` and its lock are checked

    @property
    def name(self) -> str:
        """`<team>/<name>`."""
        return self.manifest.image

    @property
    def version(self) -> str:
        """The image's version."""
        return self.manifest.version

    @property
    def base(self) -> str:
        """Name of the base image it builds on."""
        return self.manifest.base

    @property
    def platforms(self) -> list[Platform]:
        """Platforms to build for."""
        return [Platform.parse(p) for p in self.manifest.platforms]

    @property
    def jvm(self) -> JvmSpec | None:
        """The image's JVM packages."""
        return self.manifest.jvm

    @property
    def lock_path(self) -> str:
        """Root-relative path of its JVM lock, beside the manifest."""
        return team_lock_path(self.source)

    def key_declaration(self) -> dict[str, Any]:
        """What the content key sees of the declaration: everything but the version."""
        return self.manifest.model_dump(mode="json", exclude=_unkeyed(self.manifest.jvm))


def _unkeyed(jvm: JvmSpec | None) -> set[str]:
    # Without `jvm` a declaration keeps the key it had before the field existed: no image has to be bumped.
    return {"version"} if jvm is not None else {"version", "jvm"}


ImageT = TypeVar("ImageT", BaseImage, TeamImage)


@dataclass(frozen=True)
class Declarations:
    """Every declared image: the curated bases and the team images, validated together."""

    root: Path
    bases: tuple[BaseImage, ...]
    teams: tuple[TeamImage, ...]

    @property
    def images(self) -> tuple[BaseImage | TeamImage, ...]:
        """Bases first, then team images."""
        return (*self.bases, *self.teams)

    def get(self, name: str) -> BaseImage | TeamImage:
        """The image called `name`, or an error with a near name."""
        for image in self.images:
            if image.name == name:
                return image
        names = [i.name for i in self.images]
        near = difflib.get_close_matches(name, names, n=1)
        raise ConfigError(f"no image called `{name}`",
                          f"did you mean `{near[0]}`?" if near else f"known: {', '.join(names)}")


@dataclass(frozen=True)
class BaseRef:
    """A team manifest's `base` as written, with its image, file and line: read from invalid manifests too, so
    that the graph can be judged at once."""

    image: str
    base: str
    source: str
    line: int | None


@dataclass(frozen=True)
class Reading:
    """images/ and manifests/ as far as they could be read: the valid images and every problem."""

    declarations: Declarations  # the images whose files hold no problem
    problems: tuple[ValidationProblem, ...]
    # Names of the base images images/ declares, read from files with problems too where their lines can be read,
    # and the families whose image.yaml could not be read at all: whether `<family>-...` is a base is unknown.
    base_names: frozenset[str]
    unread_families: frozenset[str]
    base_refs: tuple[BaseRef, ...]  # the `base` of every team manifest YAML could read


_loaded: dict[tuple[Path, str], Declarations] = {}


def load_declarations(root: Path) -> Declarations:
    """Read and validate images/*/image.yaml and manifests/<team>/*.yaml; raise ManifestError with every problem.

    Valid declarations are kept for the run and handed out again while no file under images/ or manifests/
    has changed (by content: file times are too coarse to tell two quick writes apart).
    """
    key = (root.resolve(), tree_fingerprint(root))
    if key in _loaded:
        return _loaded[key]
    reading = read_declarations(root)
    if reading.problems:
        raise ManifestError(list(reading.problems))
    _loaded[key] = reading.declarations
    return reading.declarations


def tree_fingerprint(root: Path) -> str:
    """sha256 over the names, kinds and bytes of everything under images/ and manifests/.

    Only regular files are read (a link to a device or a pipe is named, never read: reading would not end).
    """
    digest = hashlib.sha256()
    for top in (IMAGES_DIR, MANIFESTS_DIR):
        for folder, _, files in sorted(os.walk(root / top)):
            for name in sorted(files):
                path = Path(folder) / name
                digest.update(f"{path.relative_to(root).as_posix()}\0{path.is_symlink()}\0".encode())
                try:
                    info = path.stat()
                    if stat.S_ISREG(info.st_mode):
                        digest.update(hashlib.sha256(path.read_bytes()).digest())
                    else:
                        digest.update(f"{info.st_mode}:{info.st_rdev}".encode())
                except OSError as exc:  # unreadable or a dangling link: reading the declarations says why
                    digest.update(repr(exc).encode())
    return digest.hexdigest()


def read_declarations(root: Path) -> Reading:
    """Read images/ and every file under manifests/, collecting every problem instead of stopping at one.

    A file under manifests/ is either a team manifest, manifests/<team>/<name>.yaml, or a file one of the team's
    manifests uses (a `files` source, or below it, its `smoke.job`, or its JVM lock <name>.jvm.lock). Anything
    else is a problem: a manifest that is not read would otherwise be ignored without a word. Bytecode caches are
    left out, as in the build.

    An image declaring `jvm` needs its lock, in step with the declaration (and a team image's with its base):
    its problems are the lock file's. The image stays among the declarations without its lock, so that
    `moka-images lock` can write one.
    """
    problems: list[ValidationProblem] = []
    bases, names, unread = _load_bases(root, problems)
    refs: list[BaseRef] = []
    teams = _load_teams(root, problems, refs)
    bases = [_with_lock(root, b, None, problems) for b in bases]
    by_name = {b.name: b for b in bases}
    teams = [_with_lock(root, t, by_name.get(t.base), problems) for t in teams]
    seen: dict[str, str] = {}
    everyone: list[BaseImage | TeamImage] = [*bases, *teams]
    for image in everyone:
        if image.name in seen:
            problems.append(ValidationProblem(image.source, "name", f"image `{image.name}` is also declared in "
                                              f"{seen[image.name]}", "give each image its own name",
                                              image.lines.get("name") if isinstance(image, TeamImage) else None))
        seen.setdefault(image.name, image.source)
    return Reading(Declarations(root, tuple(bases), tuple(teams)), tuple(problems), frozenset(names),
                   frozenset(unread), tuple(refs))


def lock_context(image: BaseImage | TeamImage, base: BaseImage | None) -> LockContext | None:
    """What the image's JVM lock must agree with (`base`: a team image's base, if it could be read); None
    without `jvm`."""
    if image.jvm is None:
        return None
    if isinstance(image, BaseImage):
        return LockContext(image.name, image.jvm, f"line {image.line.line} of {image.source}",
                           image.line.spark_version)
    # A base that is not an approved one is its manifest's problem, named there: the lock is not judged on it too.
    return LockContext(image.name, image.jvm, image.source, base.line.spark_version if base else None,
                       image.base if base else None, tuple(j.jar for j in base.lock.jars) if base and base.lock else ())


def _with_lock(root: Path, image: ImageT, base: BaseImage | None, problems: list[ValidationProblem]) -> ImageT:
    context = lock_context(image, base)
    if context is None:
        return image
    lock, bad = check_lock(root, image.lock_path, context)
    problems += bad
    return replace(image, lock=lock)


def _load_bases(root: Path, problems: list[ValidationProblem]) -> tuple[list[BaseImage], set[str], set[str]]:
    found: list[BaseImage] = []
    names: set[str] = set()
    unread: set[str] = set()
    files = sorted((root / IMAGES_DIR).glob(f"*/{BASE_FILE}"))
    if not files:
        problems.append(ValidationProblem(f"{IMAGES_DIR}/", "", "no base images are declared",
                                          f"add {IMAGES_DIR}/<family>/{BASE_FILE}"))
    for folder in sorted((root / IMAGES_DIR).glob("*/")):
        if not os.path.lexists(folder / BASE_FILE):
            problems.append(ValidationProblem(f"{IMAGES_DIR}/{folder.name}/", "", f"a folder without {BASE_FILE} is "
                                              "not read", f"add {BASE_FILE}, or remove the folder"))
    for path in files:
        shown = path.relative_to(root).as_posix()
        folder = path.parent
        context = {"folder": folder, "shown_folder": folder.relative_to(root).as_posix()}
        matrix, doc, bad = read(BaseMatrix, path, shown, context)
        problems += bad
        if matrix is not None:
            found += [BaseImage(f"{matrix.name}-{line.line}", folder.relative_to(root).as_posix(), shown, matrix, line)
                      for line in matrix.lines]
            problems += _stray_base_locks(root, folder, matrix)
        elif doc is None:
            unread.add(folder.name)
        else:  # `name` must be the folder's; the lines that can be read are the bases it meant to declare
            names |= {f"{folder.name}-{line}" for line in _declared_lines(doc.data)}
    return found, names | {b.name for b in found}, unread


def _stray_base_locks(root: Path, folder: Path, matrix: BaseMatrix) -> list[ValidationProblem]:
    """A lock in a family's folder that no line declaring `jvm` uses: it would be read by nothing."""
    used = {base_lock_name(line.line) for line in matrix.lines if line.jvm is not None}
    out = []
    for path in sorted(folder.iterdir()):
        line = base_lock_line(path.name)
        if line is not None and path.name not in used:
            out.append(ValidationProblem(path.relative_to(root).as_posix(), "", f"no line of {BASE_FILE} declares "
                                         f"`jvm` for this lock", f"remove it, or declare `jvm` on line {line} and run "
                                         f"`moka-images lock {matrix.name}-{line}`"))
    return out


def _declared_lines(data: Any) -> list[str]:
    lines = data.get("lines") if isinstance(data, dict) else None
    return [i["line"] for i in lines if isinstance(i, dict) and isinstance(i.get("line"), str)] \
        if isinstance(lines, list) else []


def _is_yaml(name: str) -> bool:
    return name.lower().endswith((".yaml", ".yml"))


def _load_teams(root: Path, problems: list[ValidationProblem], refs: list[BaseRef]) -> list[TeamImage]:
    found: list[TeamImage] = []
    top = root / MANIFESTS_DIR
    if not top.is_dir():
        return found
    for entry in sorted(top.iterdir()):
        shown = entry.relative_to(root).as_posix()
        if entry.name == "__pycache__":
            continue
        if entry.is_dir() and entry.is_symlink():
            problems.append(ValidationProblem(shown, "", "team folders and manifests cannot be symlinks",
                                              "keep the real files under manifests/"))
        elif entry.is_dir():
            found += _load_team(root, entry, problems, refs)
        elif _is_yaml(entry.name):
            problems.append(ValidationProblem(shown, "", "a manifest must be in its team's folder",
                                              f"move it to {MANIFESTS_DIR}/<team>/{entry.name}"))
        else:
            problems.append(ValidationProblem(shown, "", f"only team folders belong in {MANIFESTS_DIR}/",
                                              "move it into a team's folder, or remove it"))
    return found


def _load_team(root: Path, folder: Path, problems: list[ValidationProblem], refs: list[BaseRef]) -> list[TeamImage]:
    found: list[TeamImage] = []
    entries = sorted(_team_entries(folder))
    valid, used = True, []
    for rel, path in entries:
        if "/" in rel or not rel.endswith(".yaml"):
            continue
        shown = path.relative_to(root).as_posix()
        if path.is_symlink():
            problems.append(ValidationProblem(shown, "", "team folders and manifests cannot be symlinks",
                                              "keep the real files under manifests/"))
            valid = False
            continue
        context = {"folder": folder, "shown_folder": folder.relative_to(root).as_posix(), "team": folder.name}
        manifest, doc, bad = read(TeamManifest, path, shown, context)
        problems += bad
        if doc is not None and isinstance(doc.data, dict) and isinstance(doc.data.get("base"), str):
            name = manifest.image if manifest else f"{folder.name}/{doc.data.get('name')}"
            refs.append(BaseRef(name, doc.data["base"], shown, doc.key_lines().get("base")))
        if manifest is not None and doc is not None:
            found.append(TeamImage(manifest, folder.relative_to(root).as_posix(), shown, doc.key_lines()))
        valid = valid and manifest is not None
        used += _used(rel, doc.data if doc is not None else None)
    for rel, path in entries:
        if "/" not in rel and rel.endswith(".yaml") or any(rel == u or rel.startswith(u + "/") for u in used):
            continue
        # While a manifest of the folder is not valid, which files it means to use is unsure (a mistyped `src`
        # leaves its files unused): only a top-level file named like a manifest, which is never read as one,
        # is reported before the manifests are fixed.
        if valid or ("/" not in rel and _is_yaml(rel)):
            problems.append(_stray(root, folder, rel, path))
    return found


def _used(rel: str, data: Any) -> list[str]:
    """The paths, relative to the team folder, that the manifest at `rel` uses: what its `files` and `smoke.job`
    name, and its JVM lock if it declares `jvm` (read from its data, so that those of a manifest with problems
    count too)."""
    if not isinstance(data, dict):
        return []
    files, smoke = data.get("files"), data.get("smoke")
    used = [f["src"] for f in files if isinstance(f, dict) and isinstance(f.get("src"), str)] \
        if isinstance(files, list) else []
    used += [team_lock_path(rel)] if "jvm" in data else []
    return used + ([smoke["job"]] if isinstance(smoke, dict) and isinstance(smoke.get("job"), str) else [])


def _team_entries(folder: Path, prefix: str = "") -> Iterator[tuple[str, Path]]:
    """(path relative to the team folder, path) of every entry that is not a real directory; real directories
    are entered, except a manifest's place (`<name>.yaml` at the top) and bytecode caches."""
    for entry in folder.iterdir():
        rel = prefix + entry.name
        if entry.name == "__pycache__":
            continue
        if entry.is_dir() and not entry.is_symlink() and not (not prefix and entry.name.endswith(".yaml")):
            yield from _team_entries(entry, rel + "/")
        else:
            yield rel, entry


def _stray(root: Path, folder: Path, rel: str, path: Path) -> ValidationProblem:
    shown, team = path.relative_to(root).as_posix(), folder.name
    if rel.endswith(TEAM_LOCK_SUFFIX) and "/" not in rel:
        manifest = rel.removesuffix(TEAM_LOCK_SUFFIX) + ".yaml"
        if (folder / manifest).is_file():
            return ValidationProblem(shown, "", f"{manifest} declares no `jvm`, so nothing uses this lock",
                                     f"remove it, or declare `jvm.packages` in {manifest} and run `moka-images lock`")
        return ValidationProblem(shown, "", f"a JVM lock sits beside its manifest, and there is no {manifest}",
                                 "remove it, or rename it after its manifest")
    if _is_yaml(path.name) and "/" not in rel:
        return ValidationProblem(shown, "", "manifests end in .yaml, so this file is not read",
                                 f"rename it to {path.name.rsplit('.', 1)[0]}.yaml")
    if _is_yaml(path.name):
        return ValidationProblem(shown, "", "a manifest in a subfolder is not read, and no manifest of "
                                 f"{team} uses this file", f"a manifest goes in {MANIFESTS_DIR}/{team}/; a file "
                                 "the image needs is listed in a manifest's `files`")
    return ValidationProblem(shown, "", f"no manifest of {team} uses this file",
                             "list it in a manifest's `files` (or as `smoke.job`), or remove it")


# --- input files (the I/O half of the content key; the key itself is computed in plan/) -----------------
def input_files(root: Path, image: BaseImage | TeamImage) -> tuple[InputFile, ...]:
    """Hashes of every file the image is built from, with paths relative to its folder.

    A base image reads its whole folder except image.yaml and the other lines' JVM locks (each line's declaration
    and lock enter its key on their own, so bumping one line does not change the others). A team image reads its
    `files`, its smoke job and its JVM lock; its manifest enters the key as a declaration, so comments and
    formatting change nothing.
    """
    folder = root / image.folder
    if isinstance(image, BaseImage):
        paths = [p for p in _walk(folder) if _base_input(image, p.relative_to(folder).as_posix())]
    else:
        paths = [src for src, _ in team_files(root, image)]
        if image.manifest.smoke:
            paths.append(folder / image.manifest.smoke.job)
        if image.jvm is not None:
            paths.append(root / image.lock_path)
    unique = {p.relative_to(folder).as_posix(): p for p in paths}
    return tuple(_hash(rel, unique[rel]) for rel in sorted(unique))


def _base_input(image: BaseImage, rel: str) -> bool:
    """Whether the file at `rel` in a base's folder is an input of the line: not image.yaml, and no other
    line's JVM lock."""
    return rel != BASE_FILE and base_lock_line(rel) in (None, image.line.line)


def team_files(root: Path, image: TeamImage) -> list[tuple[Path, PurePosixPath]]:
    """Each file a team image copies, and where it lands under /opt/app: exactly the files its key hashes."""
    folder = root / image.folder
    out: list[tuple[Path, PurePosixPath]] = []
    for spec in image.manifest.files:
        src = folder / spec.src
        if src.is_dir():
            out += [(p, spec.target / p.relative_to(src).as_posix()) for p in _walk(src)]
        else:
            out.append((src, spec.target))
    return out


def _hash(rel: str, path: Path) -> InputFile:
    digest = hashlib.sha256()
    with path.open("rb") as handle:  # follows file symlinks: validation keeps them inside the folder
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return InputFile(rel, digest.hexdigest(), bool(path.stat().st_mode & stat.S_IXUSR))


def watched_paths(image: BaseImage | TeamImage) -> tuple[str, ...]:
    """Root-relative paths (files or folders) whose change touches the image, for `plan --since`."""
    if isinstance(image, BaseImage):
        return (image.folder,)
    spec = image.manifest
    extra = [f"{image.folder}/{f.src}" for f in spec.files]
    extra += [f"{image.folder}/{spec.smoke.job}"] if spec.smoke else []
    extra += [image.lock_path] if spec.jvm else []
    return (image.source, *extra)
