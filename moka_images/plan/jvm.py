"""Which resolved JARs an image adds to Spark's classpath: those of an artifact its base does not ship. Pure.

Spark's own JARs win, in whatever version the base has them: the classpath never holds two versions of one
artifact, and Spark runs with the libraries it was tested with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from moka_images.models import JvmJar, ShippedJar


def split_provided(resolved: Iterable[JvmJar], shipped: Sequence[ShippedJar]) -> tuple[list[JvmJar], list[JvmJar]]:
    """(the JARs to add, the JARs the base already ships), each in the order given.

    A shipped JAR that names its group matches by group and artifact. One that does not (no pom.properties
    inside) matches by artifact only, and only when the two share a Java package: artifact ids are unique
    only within a group (org.jetbrains:annotations, which Spark ships, is not software.amazon.awssdk:annotations).
    A JAR with a shipped JAR's file name is left out too: in one jars/ folder it would replace Spark's.
    """
    named = {(s.group, s.artifact) for s in shipped if s.group is not None}
    files = {s.file for s in shipped}
    unnamed: dict[str, list[frozenset[str]]] = {}
    for s in shipped:
        if s.group is None:
            unnamed.setdefault(s.artifact, []).append(s.packages)
    add: list[JvmJar] = []
    provided: list[JvmJar] = []
    for jar in resolved:
        same = (jar.group, jar.artifact) in named or jar.file in files or any(
            jar.packages & p for p in unnamed.get(jar.artifact, []))
        (provided if same else add).append(jar)
    return add, provided
