"""JVM packages through Maven, on the host: resolve declared packages into JARs with their sha256, read which
JARs a Spark distribution ships, and fetch locked JARs into a build context, checked against their lock.

Image builds reach no Maven repository: Maven runs here, on a local repository under the cache, and a build
context gets exactly the JARs a lock names, from a cache keyed by their sha256.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import requests

from moka_images import log
from moka_images.adapters import run
from moka_images.adapters.retry import Policy
from moka_images.errors import ConfigError, ServiceError
from moka_images.models import JvmJar, ShippedJar

# Pinned, so that every host resolves with the same plugin (Maven 3.8's default one predates -DoutputFile).
PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
_JAR_TYPES = ("jar", "bundle")  # an OSGi bundle is a JAR too
_POM_PROPERTIES = re.compile(r"META-INF/maven/[^/]+/[^/]+/pom\.properties")
_FETCH_RETRY = Policy(attempts=3, first=1.0)
_FETCH_TIMEOUT = (10, 120)  # connect, and between two reads


@dataclass(frozen=True)
class Dependency:
    """One artifact of a resolution, as `dependency:list` writes it."""

    group: str
    artifact: str
    type: str
    classifier: str
    version: str
    scope: str

    @property
    def file(self) -> str:
        """Its file name in a Maven repository."""
        return f"{self.artifact}-{self.version}{'-' + self.classifier if self.classifier else ''}.jar"

    @property
    def path(self) -> str:
        """Its path in a Maven repository."""
        return repository_path(self.group, self.artifact, self.version, self.file)


def repository_path(group: str, artifact: str, version: str, file: str) -> str:
    """Where a Maven repository keeps a file of group:artifact:version."""
    return f"{group.replace('.', '/')}/{artifact}/{version}/{file}"


def pom_xml(packages: Sequence[str], exclude: Sequence[str], repository: str) -> str:
    """A pom that depends on each `group:artifact:version` in `packages`, each excluding every `group:artifact`
    in `exclude` from its tree, and resolves from `repository` only (Maven's own `central` is replaced)."""
    exclusions = "".join(
        f"<exclusion><groupId>{escape(g)}</groupId><artifactId>{escape(a)}</artifactId></exclusion>"
        for g, a in (e.split(":") for e in exclude))
    dependencies = "".join(
        f"<dependency><groupId>{escape(g)}</groupId><artifactId>{escape(a)}</artifactId>"
        f"<version>{escape(v)}</version><exclusions>{exclusions}</exclusions></dependency>"
        for g, a, v in (p.split(":") for p in packages))
    central = f"<id>central</id><url>{escape(repository)}</url>"
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
            "<groupId>moka-images</groupId><artifactId>jvm-lock</artifactId><version>0</version>"
            "<packaging>pom</packaging>"
            f"<repositories><repository>{central}</repository></repositories>"
            f"<pluginRepositories><pluginRepository>{central}</pluginRepository></pluginRepositories>"
            f"<dependencies>{dependencies}</dependencies></project>\n")


def parse_dependency_list(text: str) -> list[Dependency]:
    """The artifacts in what `dependency:list -DoutputFile=...` wrote: `g:a:type[:classifier]:v:scope`, each
    maybe followed by ` -- module ...`; the heading and a `none` are skipped."""
    out = []
    for raw in text.splitlines():
        line = raw.split(" -- ", 1)[0].strip()
        if not line or line.endswith(":") or line == "none":
            continue
        parts = line.split(":")
        if len(parts) == 5:
            group, artifact, kind, version, scope = parts
            classifier = ""
        elif len(parts) == 6:
            group, artifact, kind, classifier, version, scope = parts
        else:
            raise ServiceError(f"cannot read Maven's dependency list: {line!r}",
                               f"this moka-images reads the output of {PLUGIN}")
        out.append(Dependency(group, artifact, kind, classifier, version, scope))
    return out


def resolve(packages: Sequence[str], exclude: Sequence[str], repository: str, local: Path) -> list[JvmJar]:
    """Every runtime JAR (compile and runtime scope, transitively) of `packages` with `exclude` cut from their
    trees, resolved by Maven from `repository` into the local repository `local`; sorted by coordinate."""
    local.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="moka-maven-") as tmp:
        pom, listed = Path(tmp) / "pom.xml", Path(tmp) / "dependencies.txt"
        pom.write_text(pom_xml(packages, exclude, repository))
        with log.step("resolve JVM packages with Maven", packages=" ".join(packages)):
            run.call(["mvn", "-B", "-q", "--strict-checksums", "-Dstyle.color=never", f"-Dmaven.repo.local={local}",
                      "-f", pom, f"{PLUGIN}:list", "-DincludeScope=runtime", f"-DoutputFile={listed}",
                      "-DappendOutput=false"], timeout=1800,
                     hint=f"check that each package exists on {repository} (the versions and the Scala suffix, "
                          "e.g. _2.12 or _2.13, must match); Maven needs a JDK and this host must reach it")
        found = parse_dependency_list(listed.read_text())
    jars = []
    for dep in found:
        if dep.type == "pom":  # an aggregate: its dependencies are listed on their own
            continue
        if dep.type not in _JAR_TYPES:
            raise ConfigError(f"{dep.group}:{dep.artifact}:{dep.version} is a {dep.type}, not a JAR",
                              f"add `{dep.group}:{dep.artifact}` to `jvm.exclude`")
        path = local / dep.path
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        with zipfile.ZipFile(path) as jar:
            packages_in = class_packages(jar.namelist())
        jars.append(JvmJar(dep.group, dep.artifact, dep.version, dep.file, digest, packages_in))
    return sorted(jars)


# --- what a Spark distribution ships ----------------------------------------------------------------------
def class_packages(names: Iterable[str]) -> frozenset[str]:
    """The Java packages (as folders) holding the classes among a JAR's entry names."""
    return frozenset(n.rpartition("/")[0] for n in names
                     if n.endswith(".class") and "/" in n and not n.startswith("META-INF/"))


def artifact_from_filename(name: str) -> str:
    """The artifactId in a JAR's file name `artifact-version[-classifier].jar`: the longest part before a `-`
    that is followed by a version (a digit, and a dot somewhere after it): `log4j-1.2-api-2.20.0.jar` is
    log4j-1.2-api, `zstd-jni-1.5.5-4.jar` zstd-jni."""
    stem = name.removesuffix(".jar")
    cuts = [m.start() for m in re.finditer(r"-(?=\d)", stem)]
    dotted = [c for c in cuts if "." in stem[c:]]
    return stem[:max(dotted or cuts)] if cuts else stem


def shipped_identity(name: str, poms: Sequence[dict[str, str]]) -> tuple[str | None, str]:
    """(group, artifact) of the JAR called `name` from the pom.properties it holds: the one whose
    `artifactId-version` its file name starts with (a shaded JAR holds those of what it shades too). Without
    one, (None, the artifactId in its file name)."""
    stem = name.removesuffix(".jar")
    for pom in poms:
        own = f"{pom.get('artifactId')}-{pom.get('version')}"
        if pom.get("groupId") and (stem == own or stem.startswith(own + "-")):
            return pom["groupId"], pom["artifactId"]
    return None, artifact_from_filename(name)


def parse_properties(text: str) -> dict[str, str]:
    """`key=value` lines of a .properties file, comments skipped (all pom.properties holds)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def spark_jars(wheel: Path, folder: str = "pyspark/jars/") -> list[ShippedJar]:
    """The JARs a pyspark wheel puts on Spark's classpath, each with its group and artifact (from the
    pom.properties inside it, or its file name) and the Java packages of its classes."""
    out = []
    with zipfile.ZipFile(wheel) as outer:
        for name in sorted(outer.namelist()):
            file = name.removeprefix(folder)
            if not name.startswith(folder) or "/" in file or not file.endswith(".jar"):
                continue
            with zipfile.ZipFile(io.BytesIO(outer.read(name))) as jar:
                names = jar.namelist()
                poms = [parse_properties(jar.read(n).decode("utf-8", "replace"))
                        for n in names if _POM_PROPERTIES.fullmatch(n)]
            group, artifact = shipped_identity(file, poms)
            out.append(ShippedJar(file, group, artifact, class_packages(names)))
    return out


# --- fetching locked JARs ---------------------------------------------------------------------------------
def artifact_url(repository: str, jar: JvmJar) -> str:
    """Where a Maven repository serves a JAR."""
    return f"{repository.rstrip('/')}/{repository_path(jar.group, jar.artifact, jar.version, jar.file)}"


def place_jars(jars: Sequence[JvmJar], repository: str, cache: Path, destination: Path, source: str) -> None:
    """Put each JAR in `destination` under its file name, from the cache (keyed by sha256) or fetched from
    `repository` into it; a JAR whose bytes do not have the sha256 `source` (its lock) pins is an error."""
    destination.mkdir(parents=True, exist_ok=True)
    for jar in jars:
        cached = cache / f"{jar.sha256}.jar"
        if not cached.exists():
            _fetch(jar, artifact_url(repository, jar), cached, source)
        # The image keeps the file's mode, and Spark runs as another user: a JAR it cannot read is silently
        # left off the classpath (the cache's temporary files were 0600 before this).
        cached.chmod(0o644)
        try:
            (destination / jar.file).hardlink_to(cached)
        except OSError:  # another file system
            shutil.copy2(cached, destination / jar.file)


def _fetch(jar: JvmJar, url: str, target: Path, source: str) -> None:
    """Download `url` to `target`, written under a temporary name and renamed only once its sha256 is the
    lock's: a kill leaves no half-written JAR in the cache, and a wrong one never enters it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{jar.file}.", dir=target.parent)
    tmp = Path(name)
    try:
        with log.step(f"fetch {jar.coordinate}", url=url), os.fdopen(fd, "wb") as out:
            got = _FETCH_RETRY.call(lambda: _download(url, out), retry_error=_transient,
                                    warn=lambda exc: f"fetching {url} failed ({exc}); trying again")
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        if got != jar.sha256:
            raise ConfigError(f"{source}: {jar.file} from {url} has sha256 {got}, but the lock pins {jar.sha256}",
                              "a released JAR never changes: check the repository and the network before you "
                              "trust it, then lock again")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


def _download(url: str, out: io.BufferedWriter) -> str:
    """Write `url`'s body to `out` (from its start, so that a retry starts over); returns its sha256."""
    out.seek(0)
    out.truncate()
    digest = hashlib.sha256()
    with requests.get(url, stream=True, timeout=_FETCH_TIMEOUT) as resp:
        if resp.status_code != 200:
            raise ServiceError(f"{url} answered {resp.status_code}",
                               "the lock names a JAR the repository does not serve: lock again")
        for chunk in resp.iter_content(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()
