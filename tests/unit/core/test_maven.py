"""The Maven adapter's pure half (the pom, Maven's dependency list, the identity of a shipped JAR) and its
fetching of locked JARs, against a repository served on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import threading
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from moka_images.adapters import maven
from moka_images.errors import ConfigError, ServiceError
from moka_images.models import JvmJar

NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def test_the_pom_depends_on_each_package_with_every_exclusion_and_one_repository() -> None:
    text = maven.pom_xml(["org.apache.hadoop:hadoop-aws:3.3.4", "org.json:json:20231013"],
                         ["com.amazonaws:aws-java-sdk-bundle", "org.eclipse.jetty:*"], "https://repo.example/m2")
    root = ET.fromstring(text)
    deps = root.findall("m:dependencies/m:dependency", NS)
    assert [(d.findtext("m:groupId", namespaces=NS), d.findtext("m:artifactId", namespaces=NS),
             d.findtext("m:version", namespaces=NS)) for d in deps] == [
        ("org.apache.hadoop", "hadoop-aws", "3.3.4"), ("org.json", "json", "20231013")]
    for dep in deps:
        assert [(e.findtext("m:groupId", namespaces=NS), e.findtext("m:artifactId", namespaces=NS))
                for e in dep.findall("m:exclusions/m:exclusion", NS)] == [
            ("com.amazonaws", "aws-java-sdk-bundle"), ("org.eclipse.jetty", "*")]
    assert root.findtext("m:packaging", namespaces=NS) == "pom"
    for kind in ("repositories/m:repository", "pluginRepositories/m:pluginRepository"):
        repo = root.find(f"m:{kind}", NS)
        assert repo is not None
        assert (repo.findtext("m:id", namespaces=NS), repo.findtext("m:url", namespaces=NS)) == (
            "central", "https://repo.example/m2")


LISTED = """
The following files have been resolved:
   org.apache.hadoop:hadoop-aws:jar:3.3.4:compile -- module hadoop.aws (auto)
   org.wildfly.openssl:wildfly-openssl:jar:1.0.7.Final:runtime -- module wildfly.openssl (auto)
   io.netty:netty-transport-native-epoll:jar:linux-x86_64:4.1.100.Final:runtime
   org.example:aggregate:pom:1.0:compile
"""


def test_the_dependency_list_is_read_with_classifiers_and_without_module_notes() -> None:
    deps = maven.parse_dependency_list(LISTED)
    assert [(d.group, d.artifact, d.type, d.classifier, d.version, d.scope) for d in deps] == [
        ("org.apache.hadoop", "hadoop-aws", "jar", "", "3.3.4", "compile"),
        ("org.wildfly.openssl", "wildfly-openssl", "jar", "", "1.0.7.Final", "runtime"),
        ("io.netty", "netty-transport-native-epoll", "jar", "linux-x86_64", "4.1.100.Final", "runtime"),
        ("org.example", "aggregate", "pom", "", "1.0", "compile")]
    assert deps[0].path == "org/apache/hadoop/hadoop-aws/3.3.4/hadoop-aws-3.3.4.jar"
    assert deps[2].file == "netty-transport-native-epoll-4.1.100.Final-linux-x86_64.jar"
    assert maven.parse_dependency_list("\nThe following files have been resolved:\n   none\n") == []


def test_a_dependency_list_it_cannot_read_is_an_error_not_a_guess() -> None:
    with pytest.raises(ServiceError, match="cannot read Maven's dependency list"):
        maven.parse_dependency_list("   org.json:json:20231013\n")


@pytest.mark.parametrize(("name", "artifact"), [
    ("scala-library-2.12.18.jar", "scala-library"),
    ("spark-core_2.12-3.5.7.jar", "spark-core_2.12"),
    ("log4j-1.2-api-2.20.0.jar", "log4j-1.2-api"),
    ("zstd-jni-1.5.5-4.jar", "zstd-jni"),
    ("json4s-ast_2.12-3.7.0-M11.jar", "json4s-ast_2.12"),
    ("netty-transport-native-epoll-4.1.96.Final-linux-x86_64.jar", "netty-transport-native-epoll"),
    ("orc-core-1.9.4-shaded-protobuf.jar", "orc-core"),
    ("xz-1.9.jar", "xz"),
    ("arpack_combined_all-0.1.jar", "arpack_combined_all"),
    ("JTransforms-3.1.jar", "JTransforms"),
    ("foo-2.jar", "foo"),
    ("noversion.jar", "noversion"),
])
def test_the_artifact_in_a_jar_file_name(name: str, artifact: str) -> None:
    assert maven.artifact_from_filename(name) == artifact


def test_a_shipped_jar_is_known_by_its_own_pom_properties_not_by_what_it_shades() -> None:
    shaded = [{"groupId": "com.google.guava", "artifactId": "guava", "version": "31.1-jre"},
              {"groupId": "org.apache.hadoop", "artifactId": "hadoop-client-runtime", "version": "3.3.4"}]
    assert maven.shipped_identity("hadoop-client-runtime-3.3.4.jar", shaded) == (
        "org.apache.hadoop", "hadoop-client-runtime")
    epoll = [{"groupId": "io.netty", "artifactId": "netty-transport-native-epoll", "version": "4.1.96.Final"}]
    assert maven.shipped_identity("netty-transport-native-epoll-4.1.96.Final-linux-x86_64.jar", epoll) == (
        "io.netty", "netty-transport-native-epoll")
    assert maven.shipped_identity("annotations-17.0.0.jar", []) == (None, "annotations")
    assert maven.shipped_identity("guava-14.0.1.jar", shaded) == (None, "guava")  # none of them is its own


def test_properties_and_class_packages() -> None:
    assert maven.parse_properties("#Created by Maven\ngroupId=org.json\nartifactId = json\nversion=20231013\n") == {
        "groupId": "org.json", "artifactId": "json", "version": "20231013"}
    assert maven.class_packages(["org/json/JSONObject.class", "org/json/JSONArray.class", "Top.class",
                                 "META-INF/versions/9/module-info.class", "org/json/README"]) == {"org/json"}


def _jar(entries: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as jar:
        for name, text in entries.items():
            jar.writestr(name, text)
    return buffer.getvalue()


def test_the_jars_a_pyspark_wheel_ships(tmp_path: Path) -> None:
    wheel = tmp_path / "pyspark-3.5.7-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.writestr("pyspark/__init__.py", "")
        whl.writestr("pyspark/jars/jackson-core-2.15.2.jar", _jar({
            "META-INF/maven/com.fasterxml.jackson.core/jackson-core/pom.properties":
                "groupId=com.fasterxml.jackson.core\nartifactId=jackson-core\nversion=2.15.2\n",
            "com/fasterxml/jackson/core/JsonParser.class": ""}))
        whl.writestr("pyspark/jars/annotations-17.0.0.jar", _jar({"org/jetbrains/annotations/NotNull.class": ""}))
        whl.writestr("pyspark/jars/README.md", "")
        whl.writestr("pyspark/examples/jars/example.jar", _jar({}))
    found = maven.spark_jars(wheel)
    assert [(j.file, j.group, j.artifact, sorted(j.packages)) for j in found] == [
        ("annotations-17.0.0.jar", None, "annotations", ["org/jetbrains/annotations"]),
        ("jackson-core-2.15.2.jar", "com.fasterxml.jackson.core", "jackson-core", ["com/fasterxml/jackson/core"])]


# --- fetching ------------------------------------------------------------------------------------------------
BODY = b"PK\x05\x06" + b"\x00" * 18  # an empty zip: any bytes would do
JAR = JvmJar("org.json", "json", "20231013", "json-20231013.jar", hashlib.sha256(BODY).hexdigest())


class _Repo(BaseHTTPRequestHandler):
    served: ClassVar[dict[str, bytes]] = {}
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        body = self.served.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def repository() -> Iterator[str]:
    """A Maven repository on 127.0.0.1 serving JAR's bytes at its path."""
    _Repo.served, _Repo.requests = {"/m2/org/json/json/20231013/json-20231013.jar": BODY}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Repo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/m2"
    server.shutdown()
    server.server_close()


def test_artifact_url() -> None:
    assert maven.artifact_url("https://repo1.maven.org/maven2/", JAR) == (
        "https://repo1.maven.org/maven2/org/json/json/20231013/json-20231013.jar")


def test_locked_jars_are_fetched_once_into_the_cache_and_placed_by_name(repository: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for context in ("one", "two"):
        maven.place_jars([JAR], repository, cache, tmp_path / context / "jars", "x.jvm.lock")
        assert (tmp_path / context / "jars" / JAR.file).read_bytes() == BODY
    assert _Repo.requests == ["/m2/org/json/json/20231013/json-20231013.jar"]
    assert sorted(p.name for p in cache.iterdir()) == [f"{JAR.sha256}.jar"]
    # Spark runs as another user than the build: a JAR only root can read would drop off its classpath.
    assert (tmp_path / "one" / "jars" / JAR.file).stat().st_mode & 0o777 == 0o644


def test_a_cached_jar_only_its_owner_could_read_is_placed_readable(repository: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    maven.place_jars([JAR], repository, cache, tmp_path / "one", "x.jvm.lock")
    (cache / f"{JAR.sha256}.jar").chmod(0o600)  # as the first version of the cache wrote them
    maven.place_jars([JAR], repository, cache, tmp_path / "two", "x.jvm.lock")
    assert (tmp_path / "two" / JAR.file).stat().st_mode & 0o777 == 0o644


def test_a_jar_that_is_not_what_the_lock_pins_never_enters_the_cache(repository: str, tmp_path: Path) -> None:
    wrong = JvmJar(JAR.group, JAR.artifact, JAR.version, JAR.file, "0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(ConfigError) as caught:
        maven.place_jars([wrong], repository, cache, tmp_path / "ctx", "manifests/t/x.jvm.lock")
    message = caught.value.message
    assert "manifests/t/x.jvm.lock" in message and JAR.file in message
    assert JAR.sha256 in message and "0" * 64 in message
    assert list(cache.iterdir()) == []  # not even a temporary file


def test_a_jar_the_repository_does_not_serve(repository: str, tmp_path: Path) -> None:
    missing = JvmJar("org.json", "json", "1", "json-1.jar", "0" * 64)
    with pytest.raises(ServiceError, match="answered 404"):
        maven.place_jars([missing], repository, tmp_path / "cache", tmp_path / "ctx", "x.jvm.lock")
    assert list((tmp_path / "cache").iterdir()) == []
