"""Every file under manifests/ is a team manifest in its place or a file a manifest of its team uses; anything
else is reported, never ignored. Broken base files still say which bases they meant to declare."""

from __future__ import annotations

import copy

import pytest
from manifest_tree import TEAM, Tree

from moka_images.config.manifests import load_declarations, read_declarations
from moka_images.errors import ManifestError


def problems(tree: Tree) -> list[tuple[str, str]]:
    return [(p.file, p.message) for p in read_declarations(tree.root).problems]


def test_the_valid_tree_has_no_stray_file(tree: Tree) -> None:
    assert problems(tree) == []


@pytest.mark.parametrize(("rel", "message"), [
    ("manifests/data-eng/jobs/etl-jobs.yaml", "a manifest in a subfolder is not read"),
    ("manifests/data-eng/etl-v2.yml", "manifests end in .yaml, so this file is not read"),
    ("manifests/data-eng/etl-v2.YAML", "manifests end in .yaml, so this file is not read"),
    ("manifests/data-eng/notes.txt", "no manifest of data-eng uses this file"),
    ("manifests/data-eng/smoke/other.py", "no manifest of data-eng uses this file"),
    ("manifests/ml-platform/features.py", "no manifest of ml-platform uses this file"),
    ("manifests/etl-jobs.yaml", "a manifest must be in its team's folder"),
    ("manifests/README.md", "only team folders belong in manifests/"),
])
def test_a_file_no_manifest_reads_or_uses_is_reported(tree: Tree, rel: str, message: str) -> None:
    tree.write(rel, "name: etl-jobs\n")
    found = problems(tree)
    assert [f for f, _ in found] == [rel] and message in found[0][1]
    with pytest.raises(ManifestError):
        load_declarations(tree.root)  # `plan` and `build` refuse it too


def test_files_a_manifest_uses_may_be_yaml_and_bytecode_is_left_out(tree: Tree) -> None:
    tree.write("manifests/data-eng/etl/settings.yml", "a: 1\n")  # below `files: [{src: etl}]`
    tree.write("manifests/data-eng/etl/nested/more.yaml", "a: 1\n")
    tree.write("manifests/data-eng/etl/__pycache__/x.cpython-311.pyc", b"\x00")
    tree.write("manifests/data-eng/__pycache__/y.cpython-311.pyc", b"\x00")
    assert problems(tree) == []


def test_while_a_manifest_is_invalid_only_misnamed_manifests_are_reported_in_its_folder(tree: Tree) -> None:
    tree.manifest({**TEAM, "files": [{"src": "../etl", "dest": "etl"}]})  # etl/ looks unused, but it is a typo
    tree.write("manifests/data-eng/jobs/etl.yaml", "name: x\n")
    tree.write("manifests/data-eng/etl-v2.yml", "name: x\n")  # never read as a manifest, whatever the others say
    assert [f for f, _ in problems(tree)] == ["manifests/data-eng/etl-jobs.yaml", "manifests/data-eng/etl-v2.yml"]


def test_a_symlinked_team_folder_is_reported(tree: Tree) -> None:
    (tree.root / "manifests/linked").symlink_to(tree.root / "manifests/data-eng")
    assert problems(tree) == [("manifests/linked", "team folders and manifests cannot be symlinks")]


def test_a_base_file_with_a_bad_value_still_names_its_bases(tree: Tree) -> None:
    text = (tree.root / "images/spark/image.yaml").read_text().replace("version: 1.0.0", "version: 2024-02-30", 1)
    tree.write("images/spark/image.yaml", text)
    reading = read_declarations(tree.root)
    assert reading.declarations.bases == ()
    assert reading.base_names == {"spark-3.5", "spark-4.0"} and reading.unread_families == set()
    assert [(p.file, p.field) for p in reading.problems] == [("images/spark/image.yaml", "lines.0.version")]


def test_a_base_file_yaml_cannot_read_leaves_its_family_unknown(tree: Tree) -> None:
    tree.write("images/spark/image.yaml", "name: spark\nlines: [\n")
    reading = read_declarations(tree.root)
    assert reading.base_names == set() and reading.unread_families == {"spark"}


def test_team_images_know_the_line_of_each_key(tree: Tree) -> None:
    data = copy.deepcopy(TEAM)
    tree.manifest(data)
    (image,) = load_declarations(tree.root).teams
    assert image.lines["name"] == 1 and image.lines["base"] == list(data).index("base") + 1


def test_a_base_image_folder_without_its_declaration_is_reported(tree: Tree) -> None:
    tree.write("images/flink/image.yml", "name: flink\n")
    assert problems(tree) == [("images/flink/", "a folder without image.yaml is not read")]
