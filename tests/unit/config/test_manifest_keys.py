"""Content keys over real files: what changes an image's own key, and what must not."""

from __future__ import annotations

import copy
from pathlib import Path, PurePosixPath

from manifest_tree import BASES, TEAM, Tree

from moka_images.config.manifests import input_files, load_declarations, team_files, watched_paths
from moka_images.plan.graph import own_key


def keys(root: Path) -> dict[str, str]:
    declarations = load_declarations(root)
    return {i.name: own_key(i.key_declaration(), input_files(root, i), "recipe") for i in declarations.images}


def test_base_inputs_are_the_folder_without_image_yaml(tree: Tree) -> None:
    base = load_declarations(tree.root).get("spark-3.5")
    assert [f.path for f in input_files(tree.root, base)] == ["Dockerfile", "entrypoint.sh"]
    assert [f.executable for f in input_files(tree.root, base)] == [False, True]


def test_bumping_one_line_leaves_the_other_lines_key(tree: Tree) -> None:
    before = keys(tree.root)
    data = copy.deepcopy(BASES)
    data["lines"][1].update(version="1.1.0", spark_version="4.0.2")
    tree.bases(data)
    after = keys(tree.root)
    assert after["spark-3.5"] == before["spark-3.5"]
    assert after["spark-4.0"] != before["spark-4.0"]


def test_a_version_bump_alone_does_not_change_the_key(tree: Tree) -> None:
    before = keys(tree.root)
    data = copy.deepcopy(BASES)
    data["lines"][0]["version"] = "2.0.0"
    tree.bases(data)
    tree.manifest({**TEAM, "version": "1.0.1"})
    assert keys(tree.root) == before


def test_dockerfile_changes_every_line(tree: Tree) -> None:
    before = keys(tree.root)
    tree.write("images/spark/Dockerfile", "ARG BASE\nFROM ${BASE}\nRUN true\n")
    after = keys(tree.root)
    assert after["spark-3.5"] != before["spark-3.5"] and after["spark-4.0"] != before["spark-4.0"]
    assert after["data-eng/etl-jobs"] == before["data-eng/etl-jobs"]


def test_exec_bit_changes_the_key(tree: Tree) -> None:
    before = keys(tree.root)
    (tree.root / "images/spark/entrypoint.sh").chmod(0o644)
    assert keys(tree.root)["spark-3.5"] != before["spark-3.5"]


def test_manifest_comments_do_not_change_the_key_but_content_does(tree: Tree) -> None:
    before = keys(tree.root)
    path = tree.root / "manifests/data-eng/etl-jobs.yaml"
    path.write_text("# a comment\n" + path.read_text())
    assert keys(tree.root) == before
    tree.manifest({**TEAM, "env": {"ETL_CONFIG": "/opt/app/etl/other.yaml"}})
    assert keys(tree.root)["data-eng/etl-jobs"] != before["data-eng/etl-jobs"]


def test_team_files_and_smoke_job_are_inputs_and_bytecode_is_not(tree: Tree) -> None:
    before = keys(tree.root)["data-eng/etl-jobs"]
    tree.write("manifests/data-eng/etl/__pycache__/x.cpython-311.pyc", b"\x00")
    assert keys(tree.root)["data-eng/etl-jobs"] == before
    tree.write("manifests/data-eng/etl/config.yaml", "regions: [south]\n")
    changed = keys(tree.root)["data-eng/etl-jobs"]
    assert changed != before
    tree.write("manifests/data-eng/smoke/job.py", "print('ok!')\n")
    assert keys(tree.root)["data-eng/etl-jobs"] != changed


def test_team_files_land_under_opt_app(tree: Tree) -> None:
    tree.write("manifests/data-eng/etl/sub/a.sql", "select 1")
    image = load_declarations(tree.root).get("data-eng/etl-jobs")
    placed = {src.relative_to(tree.root).as_posix(): dest for src, dest in team_files(tree.root, image)}
    assert placed == {"manifests/data-eng/etl/config.yaml": PurePosixPath("/opt/app/etl/config.yaml"),
                      "manifests/data-eng/etl/sub/a.sql": PurePosixPath("/opt/app/etl/sub/a.sql")}
    assert [f.path for f in input_files(tree.root, image)] == ["etl/config.yaml", "etl/sub/a.sql", "smoke/job.py"]


def test_watched_paths(tree: Tree) -> None:
    declarations = load_declarations(tree.root)
    assert watched_paths(declarations.get("spark-4.0")) == ("images/spark",)
    assert watched_paths(declarations.get("data-eng/etl-jobs")) == (
        "manifests/data-eng/etl-jobs.yaml", "manifests/data-eng/etl", "manifests/data-eng/smoke/job.py")
