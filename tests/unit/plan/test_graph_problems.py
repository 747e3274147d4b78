"""The build graph's own problems, all at once: unapproved bases (with a near name) and cycles."""

from __future__ import annotations

from moka_images.plan.graph import Link, graph_problems

BASES = [Link("spark-3.5", None, "images/spark/image.yaml"), Link("spark-4.0", None, "images/spark/image.yaml")]
APPROVED = ["spark-3.5", "spark-4.0"]


def test_images_on_approved_bases_have_no_problem() -> None:
    assert graph_problems([*BASES, Link("a/x", "spark-3.5", "manifests/a/x.yaml", 4)], APPROVED) == []


def test_every_unapproved_base_is_reported_with_its_line_and_a_near_name() -> None:
    found = graph_problems([*BASES, Link("a/x", "spark-3.6", "manifests/a/x.yaml", 4),
                            Link("b/y", "ubuntu", "manifests/b/y.yaml", 5),
                            Link("c/z", "a/x", "manifests/c/z.yaml", 6)], APPROVED)
    assert [(p.file, p.line, p.field, p.message) for p in found] == [
        ("manifests/a/x.yaml", 4, "base", "`spark-3.6` is not an approved base"),
        ("manifests/b/y.yaml", 5, "base", "`ubuntu` is not an approved base"),
        ("manifests/c/z.yaml", 6, "base", "`a/x` is not an approved base")]  # a team image is no base
    assert found[0].fix == "did you mean `spark-3.5`? approved: spark-3.5, spark-4.0"


def test_bases_of_a_family_whose_file_could_not_be_read_are_not_judged() -> None:
    found = graph_problems([Link("a/x", "spark-3.5", "manifests/a/x.yaml"), Link("b/y", "flink-1.0", "m/b/y.yaml")],
                           [], unknown_prefixes=["spark-"])
    assert [p.file for p in found] == ["m/b/y.yaml"]


def test_a_cycle_is_reported_once() -> None:
    found = graph_problems([Link("a", "b", "a.yaml", 1), Link("b", "c", "b.yaml", 2), Link("c", "a", "c.yaml", 3),
                            Link("d", "a", "d.yaml", 4)], ["a", "b", "c"])
    cycles = [p for p in found if "cycle" in p.message]
    assert [(p.file, p.message) for p in cycles] == [("a.yaml", "images build on each other in a cycle: a -> b -> c -> a")]
