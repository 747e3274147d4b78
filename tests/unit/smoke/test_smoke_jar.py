"""Pure parts of the JVM job's jar: version parsing, cache key, deterministic jar bytes."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from moka_images.errors import ServiceError
from moka_images.smoke.jar import cache_name, jar_bytes, source, spark_core


@pytest.mark.parametrize(("names", "expected"), [
    (["HikariCP-2.5.1.jar", "spark-core_2.12-3.5.7.jar", "spark-sql_2.12-3.5.7.jar"], ("3.5.7", "2.12")),
    (["spark-catalyst_2.13-4.0.1.jar", "spark-core_2.13-4.0.1.jar"], ("4.0.1", "2.13")),
])
def test_spark_and_scala_version_from_the_jar_names(names: list[str], expected: tuple[str, str]) -> None:
    assert spark_core(names) == expected


def test_no_spark_core_jar_is_an_error() -> None:
    with pytest.raises(ServiceError):
        spark_core(["scala-library-2.13.16.jar"])


def test_cache_name_changes_with_spark_scala_and_source() -> None:
    names = {cache_name("3.5.7", "2.12", b"a"), cache_name("4.0.1", "2.13", b"a"), cache_name("4.0.1", "2.13", b"b"),
             cache_name("3.5.7", "2.13", b"a")}
    assert len(names) == 4
    assert cache_name("3.5.7", "2.12", source()).startswith("moka-smoke-spark-3.5.7-scala-2.12-")


def test_jar_is_deterministic_and_holds_the_classes(tmp_path: Path) -> None:
    (tmp_path / "moka" / "smoke").mkdir(parents=True)
    (tmp_path / "moka" / "smoke" / "SmokeJob.class").write_bytes(b"\xca\xfe\xba\xbe")
    first = jar_bytes(tmp_path)
    assert first == jar_bytes(tmp_path)
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert names == ["META-INF/MANIFEST.MF", "moka/smoke/SmokeJob.class"]


def test_java_source_uses_only_the_java_api() -> None:
    text = source().decode()
    assert "package moka.smoke;" in text and "import scala" not in text
