"""`moka-images plan` over the repository's own declarations, with a fake test registry (planning only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moka_images import cli
from moka_images.config import os_base
from moka_images.config.manifests import load_declarations
from moka_images.config.settings import load_settings
from moka_images.models import Digest
from moka_images.plan.graph import BuildTag
from moka_images.stages import planning, registries

ROOT = Path(__file__).resolve().parents[3]
OS = Digest("sha256:" + "a" * 64)
SPARK35 = Digest("sha256:" + "c" * 64)


class FakeRegistry:
    """Tags per repository and the digest each tag points at."""

    def __init__(self, tags: dict[str, dict[str, Digest]]) -> None:
        self.tags = tags

    def list_tags(self, repository: str) -> list[str]:
        return list(self.tags.get(repository, {}))

    def head_manifest(self, repository: str, reference: str) -> Digest | None:
        return self.tags.get(repository, {}).get(reference)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, dict[str, Digest]]:
    """The real checkout, a pinned OS base and a fake test registry (its contents are the returned dict)."""
    monkeypatch.setenv("MOKA_ROOT", str(ROOT))
    monkeypatch.setenv("MOKA_HOME", str(tmp_path))
    monkeypatch.delenv("MOKA_REPOSITORY_PREFIX", raising=False)
    monkeypatch.setattr(os_base, "read_lock", lambda settings: os_base.OsBaseLock("mirror/debian:bookworm", OS.value, {}))
    tags: dict[str, dict[str, Digest]] = {}
    monkeypatch.setattr(registries, "client", lambda settings, env: FakeRegistry(tags))
    return tags


def test_graph_of_the_repository() -> None:
    graph = planning.graph_of(load_declarations(ROOT))
    assert graph.names == ["spark-3.5", "spark-4.0", "data-eng/etl-jobs", "ml-platform/feature-store"]
    etl = graph.node("data-eng/etl-jobs")
    assert etl.base == "spark-3.5" and etl.source == "manifests/data-eng/etl-jobs.yaml"
    assert "moka_images/recipes/team.py" in etl.paths
    assert graph.node("spark-3.5").own_key != graph.node("spark-4.0").own_key


def test_plan_json_on_an_empty_registry(world: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plan", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["os_base"] == OS.value
    assert [(i["image"], i["action"], i["pending"]) for i in doc["images"]] == [
        ("spark-3.5", "build", False), ("spark-4.0", "build", False),
        ("data-eng/etl-jobs", "build", True), ("ml-platform/feature-store", "build", True)]


def test_plan_resolves_up_to_date_bases_and_refuses_an_unbumped_change(
        world: dict, capsys: pytest.CaptureFixture[str]) -> None:
    graph = planning.graph_of(load_declarations(ROOT))
    spark_tag = str(BuildTag.make(graph.node("spark-3.5").version, graph.node("spark-3.5").own_key, OS))
    etl_version = graph.node("data-eng/etl-jobs").version
    stale_etl = str(BuildTag.make(etl_version, "f" * 64, SPARK35))
    world.update({"moka/spark-3.5": {spark_tag: SPARK35, "latest": SPARK35},
                  "moka/data-eng/etl-jobs": {stale_etl: Digest("sha256:" + "e" * 64)}})
    assert cli.main(["plan", "data-eng/etl-jobs"]) == 6
    out = capsys.readouterr()
    assert f"inputs changed but version {etl_version} was already built from other inputs" in out.out
    assert "1 image(s) refused: data-eng/etl-jobs" in out.err
    world["moka/data-eng/etl-jobs"][str(BuildTag.make(etl_version, graph.node("data-eng/etl-jobs").own_key, SPARK35))] \
        = Digest("sha256:" + "b" * 64)
    plan = planning.compute_plan(load_settings(), images=["data-eng/etl-jobs"])
    assert plan.decision("spark-3.5").reason == f"up to date as {spark_tag} (needed by data-eng/etl-jobs)"
    etl = plan.decision("data-eng/etl-jobs")
    assert (etl.action.value, etl.base_digest) == ("skip", SPARK35)
    assert plan.decision("ml-platform/feature-store").reason == "not selected"


def test_plan_names_an_unknown_image(world: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plan", "spark-3.6"]) == 2
    assert "did you mean `spark-3.5`?" in capsys.readouterr().err
