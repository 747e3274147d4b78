"""The JVM smoke job's jar: compiled on the host against the Spark jars of the image under test (adapter).

The jars come out of the image itself (`docker create` + `docker cp`), so the class is compiled against
exactly the Spark and Scala the image ships. The jar is cached per Spark and Scala version (read from the
spark-core jar's name) and source content, so only a new Spark release or a changed source compiles again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
from importlib import resources
from pathlib import Path

from moka_images import log
from moka_images.adapters import run
from moka_images.errors import ServiceError
from moka_images.models import ImageRef, Platform


def source() -> bytes:
    """The Java source of the JVM job."""
    return resources.files(__package__).joinpath("jvm", "SmokeJob.java").read_bytes()


def spark_core(jar_names: list[str]) -> tuple[str, str]:
    """(Spark version, Scala version) from the names in $SPARK_HOME/jars (`spark-core_2.13-4.0.1.jar`). Pure."""
    for name in jar_names:
        match = re.fullmatch(r"spark-core_(\d+\.\d+)-(\d+\.\d+\.\d+[^/]*)\.jar", name.strip())
        if match:
            return match.group(2), match.group(1)
    raise ServiceError("no spark-core jar in $SPARK_HOME/jars of the image", "is SPARK_HOME set to Spark's home?")


def cache_name(version: str, scala: str, java_source: bytes) -> str:
    """File name of the cached jar for a Spark and Scala version and the source. Pure."""
    return f"moka-smoke-spark-{version}-scala-{scala}-{hashlib.sha256(java_source).hexdigest()[:12]}.jar"


def jar_bytes(classes: Path) -> bytes:
    """A jar (zip with a manifest) of a class directory, byte-identical for identical classes. Pure."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as jar:
        jar.writestr(zipfile.ZipInfo("META-INF/MANIFEST.MF", (1980, 1, 1, 0, 0, 0)), "Manifest-Version: 1.0\r\n\r\n")
        for path in sorted(classes.rglob("*.class")):
            jar.writestr(zipfile.ZipInfo(path.relative_to(classes).as_posix(), (1980, 1, 1, 0, 0, 0)),
                         path.read_bytes())
    return buf.getvalue()


def build_jar(image: ImageRef, platform: Platform, cache_dir: Path) -> bytes:
    """The JVM job's jar for `image`: from the cache, or compiled with javac --release 17."""
    spark_home = _spark_home(image)
    listing = run.call(["docker", "run", "--rm", "--network", "none", "--platform", str(platform),
                        "--entrypoint", "ls", str(image), f"{spark_home}/jars"], quiet=True,
                       hint=f"the image should hold Spark's jars in SPARK_HOME/jars ({spark_home}/jars)")
    version, scala = spark_core(listing.stdout.split())
    java_source = source()
    cached = cache_dir / cache_name(version, scala, java_source)
    if cached.is_file():
        return cached.read_bytes()
    with log.step(f"compile the JVM smoke job against Spark {version} (Scala {scala})"):
        data = _compile(image, platform, spark_home, java_source)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    partial.write_bytes(data)
    partial.replace(cached)
    return data


def _compile(image: ImageRef, platform: Platform, spark_home: str, java_source: bytes) -> bytes:
    container = run.call(["docker", "create", "--platform", str(platform), str(image)], quiet=True).stdout.strip()
    try:
        with tempfile.TemporaryDirectory(prefix="moka-smoke-jar-") as tmp:
            work = Path(tmp)
            run.call(["docker", "cp", f"{container}:{spark_home}/jars", str(work / "jars")], quiet=True)
            (work / "SmokeJob.java").write_bytes(java_source)
            run.call(["javac", "--release", "17", "-nowarn", "-cp", str(work / "jars") + "/*",
                      "-d", str(work / "classes"), str(work / "SmokeJob.java")],
                     hint="javac 17 or newer is needed (scripts/bootstrap.sh installs openjdk-17-jdk-headless)")
            return jar_bytes(work / "classes")
    finally:
        run.call(["docker", "rm", "--force", container], check=False, quiet=True)


def _spark_home(image: ImageRef) -> str:
    inspected = run.call(["docker", "image", "inspect", "--format", "{{json .Config.Env}}", str(image)], quiet=True)
    env = dict(item.split("=", 1) for item in json.loads(inspected.stdout or "null") or [] if "=" in item)
    if not env.get("SPARK_HOME"):
        raise ServiceError(f"{image} sets no SPARK_HOME", "the Spark base image must set SPARK_HOME")
    return env["SPARK_HOME"]
