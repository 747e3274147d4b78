"""Frozen values used everywhere: platforms, digests, image references, input files, JARs, environments."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from functools import total_ordering

from moka_images.errors import ConfigError

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


@dataclass(frozen=True, order=True)
class Platform:
    """An OS/architecture pair such as linux/arm64."""

    os: str
    arch: str

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse `os/arch`; only linux/amd64 and linux/arm64 are supported."""
        parts = text.strip().split("/")
        if len(parts) != 2 or parts[0] != "linux" or parts[1] not in ("amd64", "arm64"):
            raise ConfigError(f"unsupported platform {text!r}", "use linux/amd64 or linux/arm64")
        return cls(parts[0], parts[1])

    def __str__(self) -> str:
        return f"{self.os}/{self.arch}"

    @property
    def uname(self) -> str:
        """What `uname -m` prints on this platform."""
        return {"amd64": "x86_64", "arm64": "aarch64"}[self.arch]


ALL_PLATFORMS = (Platform("linux", "amd64"), Platform("linux", "arm64"))


@dataclass(frozen=True)
class Digest:
    """A content digest, `sha256:<64 hex>`: the identity of every image inside the program."""

    value: str

    def __post_init__(self) -> None:
        if not _DIGEST_RE.match(self.value):
            raise ValueError(f"not a sha256 digest: {self.value!r}")

    def __str__(self) -> str:
        return self.value

    @property
    def hex(self) -> str:
        """The 64 hex characters."""
        return self.value.split(":", 1)[1]

    @property
    def short(self) -> str:
        """First 12 hex characters, for humans."""
        return self.hex[:12]


def is_valid_tag(tag: str) -> bool:
    """Whether `tag` is a valid OCI tag."""
    return bool(_TAG_RE.match(tag))


def is_valid_repository(name: str) -> bool:
    """Whether `name` is a valid OCI repository path."""
    return len(name) <= 255 and bool(_REPO_RE.match(name))


@dataclass(frozen=True)
class ImageRef:
    """registry/repository plus a tag or a digest (digest wins)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    def __post_init__(self) -> None:
        if not is_valid_repository(self.repository):
            raise ValueError(f"invalid repository name {self.repository!r}")
        if self.tag is not None and not is_valid_tag(self.tag):
            raise ValueError(f"invalid tag {self.tag!r}")

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """REGISTRY/REPOSITORY@sha256:... or REGISTRY/REPOSITORY:TAG; a ConfigError for anything else."""
        name, digest, tag = text, None, None
        if "@" in text:
            name, digest = text.split("@", 1)
        elif ":" in text.rsplit("/", 1)[-1]:
            name, tag = text.rsplit(":", 1)
        registry, _, repository = name.partition("/")
        try:
            return cls(registry, repository, tag, Digest(digest) if digest else None)
        except ValueError as exc:
            raise ConfigError(f"bad image reference {text!r}: {exc}",
                              "give REGISTRY/REPOSITORY@sha256:<64 hex>") from None

    @property
    def name(self) -> str:
        """registry/repository without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: Digest) -> ImageRef:
        """The same repository pinned to `digest`."""
        return ImageRef(self.registry, self.repository, None, digest)

    def with_tag(self, tag: str) -> ImageRef:
        """The same repository at `tag`."""
        return ImageRef(self.registry, self.repository, tag, None)

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag}" if self.tag else self.name


@dataclass(frozen=True)
class InputFile:
    """One file an image is built from: path relative to the image's folder, content hash, exec bit."""

    path: str
    sha256: str
    executable: bool = False


@dataclass(frozen=True, order=True)
class JvmJar:
    """One JAR from a Maven repository: its coordinate, its file name there and in SPARK_HOME/jars, and sha256."""

    group: str
    artifact: str
    version: str
    file: str
    sha256: str
    # The Java packages its classes are in, where read (resolution reads them; a lock does not keep them).
    packages: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @property
    def coordinate(self) -> str:
        """`group:artifact:version`."""
        return f"{self.group}:{self.artifact}:{self.version}"


@dataclass(frozen=True)
class ShippedJar:
    """A JAR an image already has on Spark's classpath: its Maven group and artifact (group None when the JAR
    does not say, and the artifact is read from its file name) and the Java packages its classes are in."""

    file: str
    group: str | None
    artifact: str
    packages: frozenset[str] = frozenset()


@total_ordering
class Environment(Enum):
    """Promotion stages, ordered test < dev < staging < prod."""

    TEST = "test"
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"

    @property
    def rank(self) -> int:
        """Position in the promotion order."""
        return list(Environment).index(self)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Environment):
            return NotImplemented
        return self.rank < other.rank

    @property
    def previous(self) -> Environment | None:
        """The stage an image is promoted from, None for test."""
        return list(Environment)[self.rank - 1] if self.rank else None

    @classmethod
    def parse(cls, text: str) -> Environment:
        """Parse an environment name, with a helpful error."""
        try:
            return cls(text)
        except ValueError:
            names = ", ".join(e.value for e in cls)
            raise ConfigError(f"unknown environment {text!r}", f"use one of {names}") from None

    def __str__(self) -> str:
        return self.value


# The in-toto predicate types of what is attested on an image digest (cosign `--type`).
SBOM_TYPE = "https://cyclonedx.org/bom"
SCAN_TYPE = "https://moka-images.dev/attestations/scan/v1"
SMOKE_TYPE = "https://moka-images.dev/attestations/smoke/v1"
PROMOTION_TYPE = "https://moka-images.dev/attestations/promotion/v1"
