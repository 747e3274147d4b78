"""Settings: defaults -> moka.yaml (one profile) -> MOKA_* environment -> command-line flags."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, field_validator

from moka_images.config.validation import Document, Strict, problem, read_yaml, validate
from moka_images.errors import ConfigError, ManifestError, ValidationProblem
from moka_images.models import Environment, Platform

CONFIG_NAME = "moka.yaml"


class EnvironmentSettings(Strict):
    """One environment: its registry (an ECR registry or a local one), account and signing keys."""

    registry: str = Field(description="host[:port] of the registry")
    account: str = Field(pattern=r"^\d{12}$")
    role_arn: str | None = Field(default=None, description="role assumed to act in this account")
    signing_key: str = Field(description="cosign key: a file path or a KMS URI such as awskms:///alias/x")
    public_key: str = Field(description="cosign public key: a file path or a KMS URI")
    policy: str | None = Field(default=None, description="policy file, default policies/<env>.yaml")
    approval_required: bool = False


class EcrSettings(Strict):
    """The ECR control plane: real AWS when endpoint is empty, a moto server otherwise."""

    region: str
    endpoint: str | None = None
    lifecycle_keep_prerelease: int = Field(default=20, ge=1)
    lifecycle_expire_untagged_days: int = Field(default=7, ge=1)
    kms_key: str | None = Field(default=None, description="KMS key ARN for repositories (default: the AWS-managed key)")


class OsBaseSettings(Strict):
    """Where the OS base image comes from: a repository in the mirror, seeded locally by debootstrap."""

    repository: str = "debian"
    tag: str = "bookworm"
    suite: str = "bookworm"


class TrivySettings(Strict):
    """Air-gapped vulnerability databases, as repositories in the mirror."""

    db_repository: str = "trivy-db"
    java_db_repository: str = "trivy-java-db"


class SmokeS3Settings(Strict):
    """Where the smoke suite's S3A round trip writes (and then deletes what it wrote)."""

    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="an existing bucket")
    prefix: str = Field(default="moka-smoke", pattern=r"^[A-Za-z0-9._/-]+$")
    endpoint: str | None = Field(default=None, description="an S3-compatible endpoint; none: AWS S3 itself")
    path_style: bool = Field(default=False, description="bucket in the path, as S3 stand-ins need")


class Settings(Strict):
    """Everything a run needs to know about where things live."""

    profile: str
    root: Path
    home: Path
    platforms: list[str] = Field(default_factory=lambda: ["linux/amd64", "linux/arm64"])
    repository_prefix: str = "moka"
    mirror: str
    os_base: OsBaseSettings = Field(default_factory=OsBaseSettings)
    trivy: TrivySettings = Field(default_factory=TrivySettings)
    ecr: EcrSettings
    environments: dict[Environment, EnvironmentSettings]
    local_stack: bool = False
    smoke_s3: SmokeS3Settings | None = None

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, value: list[str]) -> list[str]:
        for p in value:
            try:
                Platform.parse(p)
            except ConfigError as exc:  # pydantic passes only ValueError on as a validation error
                raise problem(exc.message, exc.hint) from None
        return value

    @field_validator("environments")
    @classmethod
    def _all_envs(cls, value: dict[Environment, EnvironmentSettings]) -> dict[Environment, EnvironmentSettings]:
        missing = [e.value for e in Environment if e not in value]
        if missing:
            raise ValueError(f"environments missing: {', '.join(missing)}")
        return value

    def env(self, environment: Environment) -> EnvironmentSettings:
        """Settings of one environment."""
        return self.environments[environment]

    def platform_list(self) -> list[Platform]:
        """Configured platforms as values."""
        return [Platform.parse(p) for p in self.platforms]

    def policy_path(self, environment: Environment) -> Path:
        """The policy file that judges images entering `environment`."""
        configured = self.environments[environment].policy
        return self.root / (configured or f"policies/{environment.value}.yaml")

    def repository(self, image: str) -> str:
        """Registry repository of an image: `<prefix>/<image>`."""
        return f"{self.repository_prefix}/{image}" if self.repository_prefix else image

    @property
    def state_dir(self) -> Path:
        """Where records, caches and local services keep their files."""
        return self.home


class _Profile(Strict):
    platforms: list[str] | None = None
    repository_prefix: str | None = None
    mirror: str
    os_base: OsBaseSettings | None = None
    trivy: TrivySettings | None = None
    ecr: EcrSettings
    environments: dict[Environment, EnvironmentSettings]
    local_stack: bool = False
    smoke_s3: SmokeS3Settings | None = None


class _ConfigFile(Strict):
    default_profile: str
    profiles: dict[str, _Profile]


def default_home() -> Path:
    """MOKA_HOME, else the user's cache directory: shared by every clone on the machine."""
    if os.environ.get("MOKA_HOME"):
        return Path(os.environ["MOKA_HOME"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "moka-images"


def find_root(start: Path | None = None) -> Path:
    """The project directory: MOKA_ROOT, else the nearest parent holding moka.yaml."""
    if os.environ.get("MOKA_ROOT"):
        return Path(os.environ["MOKA_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise ConfigError(f"no {CONFIG_NAME} found in {here} or its parents", "run from the project checkout or set MOKA_ROOT")


def load_settings(root: Path | None = None, profile: str | None = None) -> Settings:
    """Read moka.yaml, pick the profile (flag, then MOKA_PROFILE, then default_profile) and expand `{home}`."""
    root = root or find_root()
    doc, parsed, problems = _read_config(root)
    if parsed is None or doc is None:
        raise ManifestError(problems)
    name = profile or os.environ.get("MOKA_PROFILE") or parsed.default_profile
    if name not in parsed.profiles:
        raise ManifestError([ValidationProblem(CONFIG_NAME, "profiles", f"no profile {name!r}",
                                               f"known: {', '.join(parsed.profiles)}", doc.line(("profiles",)))])
    settings, problems = _settings(root, parsed, name, doc, os.environ)
    if settings is None:
        raise ManifestError(problems)
    return settings


def check_settings(root: Path) -> tuple[list[Settings], list[ValidationProblem]]:
    """Every profile of moka.yaml as written (MOKA_* overrides aside): those that validate, and every problem."""
    doc, parsed, problems = _read_config(root)
    if parsed is None or doc is None:
        return [], problems
    found = []
    for name in parsed.profiles:
        settings, bad = _settings(root, parsed, name, doc, {})
        problems += bad
        found += [settings] if settings else []
    return found, problems


def _read_config(root: Path) -> tuple[Document | None, _ConfigFile | None, list[ValidationProblem]]:
    doc, problems = read_yaml(root / CONFIG_NAME, CONFIG_NAME)
    if doc is None:
        return None, None, problems
    parsed, bad = validate(_ConfigFile, doc.data, CONFIG_NAME, doc=doc)
    problems += bad
    if parsed is not None and parsed.default_profile not in parsed.profiles:
        problems.append(ValidationProblem(CONFIG_NAME, "default_profile", f"no profile {parsed.default_profile!r}",
                                          f"known: {', '.join(parsed.profiles)}", doc.line(("default_profile",))))
    return doc, (None if problems else parsed), problems


def _settings(root: Path, parsed: _ConfigFile, name: str, doc: Document,
              environ: Mapping[str, str]) -> tuple[Settings | None, list[ValidationProblem]]:
    """One profile's settings, with `{home}` expanded and the MOKA_* overrides in `environ` applied."""
    home = default_home()
    values = {k: v for k, v in parsed.profiles[name].model_dump(exclude_none=True).items()}
    values["environments"] = {
        env: {k: _expand(v, home) if isinstance(v, str) else v for k, v in cfg.items()}
        for env, cfg in values["environments"].items()
    }
    if environ.get("MOKA_PLATFORMS"):
        values["platforms"] = [p.strip() for p in environ["MOKA_PLATFORMS"].split(",") if p.strip()]
    if environ.get("MOKA_REPOSITORY_PREFIX") is not None:
        values["repository_prefix"] = environ["MOKA_REPOSITORY_PREFIX"]
    return validate(Settings, {**values, "profile": name, "root": root, "home": home}, CONFIG_NAME,
                    doc=doc, at=("profiles", name))


def _expand(value: str, home: Path) -> str:
    return re.sub(r"\{home\}", str(home), value)

