"""The smoke suite as data: which jobs exist and how they are grouped into Spark applications. Pure.

Each Spark application is one spark-submit (one container locally, one driver pod on Kubernetes). Spark's
start is the dominant cost under qemu, so the PySpark jobs share one application, and that application is
the one started through the image's Kubernetes entrypoint in driver mode (its first job checks what the
entrypoint set up). The JVM job runs as its own `spark-submit --class`, through the entrypoint's passthrough.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from pathlib import Path

from moka_images.errors import ConfigError
from moka_images.recipes.team import APP_DIR

# Where the suite's own files (script, jar) are placed inside the image under test.
PAYLOAD_DIR = "/opt/moka-smoke"
JVM_CLASS = "moka.smoke.SmokeJob"
JAR_NAME = "moka-smoke.jar"
PYSPARK_SCRIPT = "pyspark_suite.py"
# The driver's properties, passed as Spark on Kubernetes passes a driver pod's (`--properties-file`).
PROPERTIES_FILE = "spark.properties"
# The app id a driver pod's properties carry; the entrypoint hands it to the JSON log lines.
APP_ID = "spark-moka-smoke"
# What Spark on Kubernetes passes for a Python application (DriverCommandFeatureStep).
PYTHON_RUNNER = "org.apache.spark.deploy.PythonRunner"
RESULT_PREFIX = "MOKA_RESULT "
# A spark-submit's own start (JVM, SparkContext) on top of its jobs' limits; qemu makes it slow.
STARTUP_ALLOWANCE = 150.0


class JobKind(Enum):
    """How a job runs: inside the shared PySpark application, or as its own application."""

    PYSPARK = "pyspark"
    JVM = "jvm"
    TEAM = "team"


@dataclass(frozen=True)
class JobSpec:
    """One smoke job: name, kind, time limit; a team job also has its file in the image and, optionally, the
    text it prints when it worked (without one, exit code 0 is success)."""

    name: str
    kind: JobKind
    timeout: float
    path: str | None = None
    expect: str | None = None

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ConfigError(f"smoke job {self.name}: timeout must be positive, got {self.timeout}")
        if self.kind is JobKind.TEAM and not self.path:
            raise ConfigError(f"team smoke job {self.name} needs the path of its script in the image")


# Limits leave room for arm64 under qemu, where each job takes several times its native time.
BUILTIN_JOBS: tuple[JobSpec, ...] = (
    JobSpec("entrypoint", JobKind.PYSPARK, 120),
    JobSpec("dataframe_sql", JobKind.PYSPARK, 180),
    JobSpec("python_udf", JobKind.PYSPARK, 120),
    JobSpec("parquet", JobKind.PYSPARK, 180),
    # What EKS needs of the image: one version of each JAR, Prometheus endpoints, JSON logs (the S3A round trip
    # joins them when an S3 target is configured: `s3a_job`).
    JobSpec("classpath", JobKind.PYSPARK, 60),
    JobSpec("metrics", JobKind.PYSPARK, 120),
    JobSpec("json_logs", JobKind.PYSPARK, 60),
    JobSpec("jvm", JobKind.JVM, 240),
)
S3A_TIMEOUT = 240.0


@dataclass(frozen=True)
class S3Target:
    """Where the S3A round trip writes (`s3a://bucket/prefix`), and what the driver needs to reach it there:
    Spark settings (an endpoint, path-style access), environment (a stand-in's keys) and whether the endpoint
    is on the host's loopback (the container then shares the host's network)."""

    uri: str
    conf: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    host_network: bool = False

    def __post_init__(self) -> None:
        if not self.uri.startswith("s3a://") or len(self.uri) <= len("s3a://"):
            raise ConfigError(f"smoke S3 target {self.uri!r} is not an s3a:// URI", "e.g. s3a://bucket/prefix")


def s3a_job(target: S3Target) -> JobSpec:
    """The S3A round trip (Parquet written through the image's committer, read back, removed) at `target`."""
    return JobSpec("s3a", JobKind.PYSPARK, S3A_TIMEOUT, path=target.uri)


def team_job(path: str, expect: str | None, timeout: float) -> JobSpec:
    """A team's own smoke job: a PySpark file at `path` under APP_DIR in the image."""
    clean = Path(path)
    if clean.is_absolute() or ".." in clean.parts or clean.suffix != ".py":
        raise ConfigError(f"team smoke job {path!r} must be a relative .py path inside the team folder")
    return JobSpec("team", JobKind.TEAM, timeout, path=f"{APP_DIR}/{clean.as_posix()}", expect=expect or None)


@dataclass(frozen=True)
class SparkApp:
    """One spark-submit, described independently of where it runs.

    `via_entrypoint` runs it through the image's Kubernetes entrypoint in driver mode, with the arguments
    Spark on Kubernetes gives a driver pod; otherwise `spark-submit` is called directly (passthrough).
    """

    name: str
    jobs: tuple[JobSpec, ...]
    resource: str
    main_class: str | None = None
    app_args: tuple[str, ...] = ()
    via_entrypoint: bool = False
    conf: tuple[tuple[str, str], ...] = field(default=())
    startup: float = STARTUP_ALLOWANCE
    env: tuple[tuple[str, str], ...] = ()
    host_network: bool = False

    @property
    def limit(self) -> float:
        """Seconds after which the whole application is killed: its start plus its jobs' limits."""
        return self.startup + sum(job.timeout for job in self.jobs)


# Small and quiet: two local cores, a few shuffle partitions, no UI, warnings only in the driver log.
BASE_CONF: tuple[tuple[str, str], ...] = (
    ("spark.master", "local[2]"),
    ("spark.ui.enabled", "false"),
    ("spark.sql.shuffle.partitions", "4"),
    ("spark.log.level", "WARN"),
    ("spark.driver.host", "127.0.0.1"),
)


# The shared application serves its UI (on a free port) for the metrics job's scrape, and names itself as a
# driver pod's properties would.
PYSPARK_CONF: tuple[tuple[str, str], ...] = (
    *((k, v) for k, v in BASE_CONF if k != "spark.ui.enabled"),
    ("spark.ui.enabled", "true"),
    ("spark.ui.port", "0"),
    ("spark.app.id", APP_ID),
)


def plan_apps(jobs: tuple[JobSpec, ...], s3: S3Target | None = None) -> list[SparkApp]:
    """Group jobs into Spark applications: the PySpark jobs and then the team's script in one, the JVM job
    in its own. The team's script goes last because it usually stops the shared SparkSession. The shared
    application gets what `s3` needs to reach its target when the S3A round trip is among the jobs."""
    apps: list[SparkApp] = []
    python = (*(j for j in jobs if j.kind is JobKind.PYSPARK), *(j for j in jobs if j.kind is JobKind.TEAM))
    if python:
        args = tuple(f"{j.name}={j.timeout:g}" + (f"@{j.path}" if j.path else "") for j in python)
        reach = s3 if s3 is not None and any(j.name == "s3a" for j in python) else None
        apps.append(SparkApp("pyspark", python, f"local://{PAYLOAD_DIR}/{PYSPARK_SCRIPT}", main_class=PYTHON_RUNNER,
                             app_args=args, via_entrypoint=True, conf=(*PYSPARK_CONF, *(reach.conf if reach else ())),
                             env=reach.env if reach else (), host_network=bool(reach and reach.host_network)))
    apps += [SparkApp(j.name, (j,), f"{PAYLOAD_DIR}/{JAR_NAME}", main_class=JVM_CLASS, conf=BASE_CONF)
             for j in jobs if j.kind is JobKind.JVM]
    return apps


def properties_file(app: SparkApp) -> bytes:
    """The application's settings as the `spark.properties` a driver pod is given (Java properties). Pure."""
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("\n", "\\n")

    return "".join(f"{escape(k)}={escape(v)}\n" for k, v in app.conf).encode()


def payload_files() -> dict[str, bytes]:
    """The suite's script, by file name, to be placed in PAYLOAD_DIR (the jar is built separately)."""
    base = resources.files(__package__).joinpath("payload")
    return {PYSPARK_SCRIPT: base.joinpath(PYSPARK_SCRIPT).read_bytes()}
