"""Spark's own JARs win: a resolved JAR of an artifact the base ships is left out, in any version."""

from __future__ import annotations

from moka_images.models import JvmJar, ShippedJar
from moka_images.plan.jvm import split_provided


def jar(coordinate: str, *packages: str) -> JvmJar:
    group, artifact, version = coordinate.split(":")
    return JvmJar(group, artifact, version, f"{artifact}-{version}.jar", "0" * 64, frozenset(packages))


SHIPPED = [
    ShippedJar("jackson-databind-2.15.2.jar", "com.fasterxml.jackson.core", "jackson-databind"),
    ShippedJar("annotations-17.0.0.jar", None, "annotations", frozenset({"org/jetbrains/annotations"})),
    ShippedJar("jsr305-3.0.0.jar", None, "jsr305", frozenset({"javax/annotation"})),
]


def test_spark_s_own_artifacts_win_in_any_version() -> None:
    databind = jar("com.fasterxml.jackson.core:jackson-databind:2.12.7")
    ion = jar("software.amazon.ion:ion-java:1.0.2")
    add, provided = split_provided([databind, ion], SHIPPED)
    assert (add, provided) == ([ion], [databind])


def test_the_same_artifact_id_in_another_group_is_another_artifact() -> None:
    other = jar("com.example:jackson-databind:1.0")
    assert split_provided([other], SHIPPED) == ([other], [])


def test_a_jar_without_pom_properties_matches_by_artifact_when_they_share_a_package() -> None:
    jsr305 = jar("com.google.code.findbugs:jsr305:3.0.2", "javax/annotation")
    aws = jar("software.amazon.awssdk:annotations:2.24.6", "software/amazon/awssdk/annotations")
    jetbrains = jar("org.jetbrains:annotations:24.0.0", "org/jetbrains/annotations")
    add, provided = split_provided([jsr305, aws, jetbrains], SHIPPED)
    assert add == [aws]
    assert provided == [jsr305, jetbrains]


def test_the_base_s_locked_jars_are_shipped_too() -> None:
    locked = [ShippedJar("hadoop-aws-3.3.4.jar", "org.apache.hadoop", "hadoop-aws")]
    aws = jar("org.apache.hadoop:hadoop-aws:3.3.6")
    assert split_provided([aws], locked) == ([], [aws])


def test_a_jar_named_like_one_of_spark_s_would_replace_it_and_is_left_out() -> None:
    same_name = jar("com.example:annotations:17.0.0", "com/example")
    assert split_provided([same_name], SHIPPED) == ([], [same_name])
