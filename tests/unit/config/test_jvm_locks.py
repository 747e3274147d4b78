"""JVM locks as `check` and `plan` read them: present, in step with their declaration and base, well formed,
every problem at once with the lock's file, field and line; and an input of its own image only."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from manifest_tree import BASES, TEAM, Tree

from moka_images.config.jvm import JvmSpec, lock_text, new_lock
from moka_images.config.manifests import input_files, load_declarations, read_declarations, watched_paths
from moka_images.errors import ManifestError, ValidationProblem
from moka_images.models import Digest, JvmJar
from moka_images.plan.graph import Action, BuildTag, make_plan
from moka_images.stages.planning import graph_of

TEAM_LOCK = "manifests/data-eng/etl-jobs.jvm.lock"
BASE_LOCK = "images/spark/jvm-3.5.lock"
AVRO = "org.apache.spark:spark-avro_2.12:3.5.7"
XZ = JvmJar("org.tukaani", "xz", "1.9", "xz-1.9.jar", "1" * 64)
AWS = JvmJar("org.apache.hadoop", "hadoop-aws", "3.3.4", "hadoop-aws-3.3.4.jar", "2" * 64)
RELOCK = "run `moka-images lock data-eng/etl-jobs`"


def write_lock(tree: Tree, rel: str, image: str, spec: dict[str, Any], base: str | None,
               jars: list[JvmJar], spark_version: str = "3.5.7", provided: tuple[JvmJar, ...] = ()) -> None:
    tree.write(rel, lock_text(new_lock(image, JvmSpec.model_validate(spec), spark_version, base, jars, provided)))


def with_jvm(tree: Tree, jars: list[JvmJar] | None = None, base_jars: list[JvmJar] | None = None) -> None:
    """The team image declares spark-avro, locked; with `base_jars`, spark-3.5 declares hadoop-aws, locked."""
    spec = {"packages": [AVRO], "exclude": ["org.tukaani:xz"]}
    tree.manifest({**TEAM, "jvm": spec})
    write_lock(tree, TEAM_LOCK, "data-eng/etl-jobs", spec, "spark-3.5", [XZ] if jars is None else jars)
    if base_jars is not None:
        data = copy.deepcopy(BASES)
        data["lines"][0]["jvm"] = {"packages": [AWS.coordinate]}
        tree.bases(data)
        write_lock(tree, BASE_LOCK, "spark-3.5", data["lines"][0]["jvm"], None, base_jars)


def edit_lock(tree: Tree, rel: str, change: Any) -> None:
    data = json.loads((tree.root / rel).read_text())
    change(data)
    tree.write(rel, json.dumps(data, indent=2) + "\n")


def problems(tree: Tree) -> list[ValidationProblem]:
    with pytest.raises(ManifestError) as caught:
        load_declarations(tree.root)
    return caught.value.problems


def fields(found: list[ValidationProblem]) -> list[tuple[str, str]]:
    return sorted((p.file, p.field) for p in found)


def test_a_lock_in_step_loads_with_its_image(tree: Tree) -> None:
    with_jvm(tree, base_jars=[AWS])
    declarations = load_declarations(tree.root)
    team, base = declarations.get("data-eng/etl-jobs"), declarations.get("spark-3.5")
    assert team.lock is not None and [j.jar for j in team.lock.jars] == [XZ]
    assert base.lock is not None and [j.coordinate for j in base.lock.jars] == [AWS.coordinate]
    assert declarations.get("spark-4.0").lock is None
    assert team.lock_path == TEAM_LOCK and base.lock_path == BASE_LOCK


def test_the_lock_text_is_sorted_indented_json_with_a_trailing_newline() -> None:
    spec = JvmSpec.model_validate({"packages": [AVRO, "a:b:1"]})
    text = lock_text(new_lock("t/x", spec, "3.5.7", "spark-3.5", [XZ, AWS], [XZ, XZ]))
    assert text.endswith("}\n") and not text.endswith("\n\n")
    data = json.loads(text)
    assert list(data) == ["schema", "image", "base", "spark_version", "packages", "exclude", "repository", "jars",
                          "provided_by_base"]
    assert data["packages"] == [AVRO, "a:b:1"]  # as declared
    assert [j["coordinate"] for j in data["jars"]] == [AWS.coordinate, XZ.coordinate]
    assert data["provided_by_base"] == [XZ.coordinate]
    assert text == lock_text(new_lock("t/x", spec, "3.5.7", "spark-3.5", [AWS, XZ], [XZ]))
    assert "base" not in json.loads(lock_text(new_lock("spark-3.5", spec, "3.5.7", None, [], [])))


@pytest.mark.parametrize(("change", "stale", "message"), [
    (lambda t: t.manifest({**TEAM, "jvm": {"packages": [AVRO, "a:b:1"], "exclude": ["org.tukaani:xz"]}}),
     ["packages"], "out of date"),
    (lambda t: t.manifest({**TEAM, "jvm": {"packages": [AVRO]}}), ["exclude"], "out of date"),
    (lambda t: t.manifest({**TEAM, "base": "spark-4.0", "jvm": {"packages": [AVRO], "exclude": ["org.tukaani:xz"]}}),
     ["base", "spark_version"], 'it has "spark-3.5", the declaration "spark-4.0"'),
    (lambda t: t.bases({**BASES, "lines": [{**BASES["lines"][0], "spark_version": "3.5.8"}, BASES["lines"][1]]}),
     ["spark_version"], 'it has "3.5.7", the declaration "3.5.8"'),
])
def test_a_lock_out_of_step_with_its_declaration(tree: Tree, change: Any, stale: list[str], message: str) -> None:
    with_jvm(tree)
    change(tree)
    found = problems(tree)
    assert fields(found) == [(TEAM_LOCK, f) for f in stale]
    assert message in found[0].message and "out of date" in found[0].message
    assert all(p.fix == RELOCK and p.line for p in found)


def test_a_team_lock_holding_what_its_base_now_ships(tree: Tree) -> None:
    with_jvm(tree, jars=[XZ, AWS], base_jars=[AWS])
    found = problems(tree)
    assert fields(found) == [(TEAM_LOCK, "jars.0.coordinate")]  # sorted: hadoop-aws first
    assert "the base spark-3.5 now ships org.apache.hadoop:hadoop-aws (3.3.4)" in found[0].message


def test_every_problem_of_a_lock_at_once_with_lines(tree: Tree) -> None:
    with_jvm(tree, jars=[XZ, AWS])

    def spoil(data: dict[str, Any]) -> None:
        data["jars"][0]["sha256"] = "ABC"
        data["jars"][1]["file"] = "xz-2.0.jar"
        data["jars"].append({"coordinate": "org.tukaani:xz:[1,2)", "file": "x.jar", "sha256": "3" * 64})
        data["provenance"] = "me"
    edit_lock(tree, TEAM_LOCK, spoil)
    found = problems(tree)
    assert fields(found) == [(TEAM_LOCK, "jars.0.sha256"), (TEAM_LOCK, "jars.1"), (TEAM_LOCK, "jars.2.coordinate"),
                             (TEAM_LOCK, "provenance")]
    assert all(p.line and p.fix for p in found), found
    by_field = {p.field: p for p in found}
    assert "is not a sha256" in by_field["jars.0.sha256"].message
    assert by_field["jars.0.sha256"].fix == RELOCK
    assert "`xz-2.0.jar` is not a file of org.tukaani:xz:1.9" in by_field["jars.1"].message
    assert "version range" in by_field["jars.2.coordinate"].message


def test_a_lock_at_odds_with_itself(tree: Tree) -> None:
    other = JvmJar("org.tukaani", "xz", "1.10", "xz-1.10.jar", "4" * 64)
    with_jvm(tree, jars=[XZ, other])
    edit_lock(tree, TEAM_LOCK, lambda d: d.update(repository="https://evil.example/maven2", schema=2))
    found = problems(tree)
    assert fields(found) == [(TEAM_LOCK, "schema")]  # the model first: nothing else is read from a lock it refuses
    edit_lock(tree, TEAM_LOCK, lambda d: d.update(schema=1))
    found = problems(tree)
    assert fields(found) == [(TEAM_LOCK, "jars.1.coordinate"), (TEAM_LOCK, "repository")]
    by_field = {p.field: p.message for p in found}
    assert "org.tukaani:xz is locked at 1.10 and 1.9" in by_field["jars.1.coordinate"]  # sorted as text
    assert "JARs come from https://repo1.maven.org/maven2 only" in by_field["repository"]


@pytest.mark.parametrize(("text", "message"), [
    ('{"schema": 1,', "not valid YAML"),
    ("[]", "expected a mapping"),
    ('{"schema": 1}', "required field is missing"),
])
def test_a_lock_that_does_not_parse(tree: Tree, text: str, message: str) -> None:
    with_jvm(tree)
    tree.write(TEAM_LOCK, text)
    found = problems(tree)
    assert found and all(p.file == TEAM_LOCK and p.fix for p in found)
    assert any(message in p.message for p in found), found


def test_check_keeps_the_image_without_its_lock_so_that_lock_can_write_one(tree: Tree) -> None:
    with_jvm(tree)
    (tree.root / TEAM_LOCK).unlink()
    reading = read_declarations(tree.root)
    assert [p.file for p in reading.problems] == [TEAM_LOCK]
    assert reading.declarations.get("data-eng/etl-jobs").lock is None


def test_the_lock_is_an_input_of_its_image_only(tree: Tree) -> None:
    with_jvm(tree, base_jars=[AWS])
    declarations = load_declarations(tree.root)
    team = declarations.get("data-eng/etl-jobs")
    assert "etl-jobs.jvm.lock" in [f.path for f in input_files(tree.root, team)]
    assert TEAM_LOCK in watched_paths(team)
    assert [f.path for f in input_files(tree.root, declarations.get("spark-3.5"))] == [
        "Dockerfile", "entrypoint.sh", "jvm-3.5.lock"]
    assert "jvm-3.5.lock" not in [f.path for f in input_files(tree.root, declarations.get("spark-4.0"))]


def test_declarations_without_jvm_keep_their_keys(tree: Tree) -> None:
    """`jvm` is new: a declaration without it must keep the key it had, or every image would need a bump."""
    team = load_declarations(tree.root).get("data-eng/etl-jobs")
    assert "jvm" not in team.key_declaration()
    assert "jvm" not in load_declarations(tree.root).get("spark-3.5").key_declaration()


OS = Digest("sha256:" + "a" * 64)
BASE_DIGESTS = {"spark-3.5": Digest("sha256:" + "c" * 64), "spark-4.0": Digest("sha256:" + "d" * 64)}


def built_inventory(root: Path) -> dict[str, list[str]]:
    """The registry's tags once every image of the tree is built as declared now."""
    graph = graph_of(load_declarations(root))
    return {n.name: [str(BuildTag.make(n.version, n.own_key, BASE_DIGESTS.get(n.base or "", OS)))]
            for n in graph.order}


def plan_actions(root: Path, inventory: dict[str, list[str]]) -> dict[str, Action]:
    plan = make_plan(graph_of(load_declarations(root)), OS, inventory)
    while todo := plan.to_resolve():
        for image, _ in todo:
            plan = plan.settle(image, BASE_DIGESTS[image])
    return {d.image: d.action for d in plan.decisions}


def test_plan_refuses_a_changed_lock_without_a_version_bump(tree: Tree) -> None:
    with_jvm(tree, base_jars=[AWS])
    inventory = built_inventory(tree.root)
    assert set(plan_actions(tree.root, inventory).values()) == {Action.SKIP}
    newer = JvmJar("org.tukaani", "xz", "1.9", "xz-1.9.jar", "5" * 64)  # same JAR, other bytes
    edit_lock(tree, TEAM_LOCK, lambda d: d["jars"][0].update(sha256=newer.sha256))
    edit_lock(tree, BASE_LOCK, lambda d: d["jars"][0].update(sha256="6" * 64))
    actions = plan_actions(tree.root, inventory)
    assert actions["data-eng/etl-jobs"] is Action.REFUSE
    assert actions["spark-3.5"] is Action.REFUSE
    assert actions["spark-4.0"] is Action.SKIP  # the other line's lock is no input of it
    tree.manifest({**TEAM, "version": "1.0.1", "jvm": {"packages": [AVRO], "exclude": ["org.tukaani:xz"]}})
    data = copy.deepcopy(BASES)
    data["lines"][0].update(version="1.0.1", jvm={"packages": [AWS.coordinate]})
    tree.bases(data)
    actions = plan_actions(tree.root, inventory)
    assert (actions["spark-3.5"], actions["data-eng/etl-jobs"]) == (Action.BUILD, Action.BUILD)
