"""The declarations are read once a run, and again as soon as any file under images/ or manifests/ changes."""

from __future__ import annotations

from manifest_tree import Tree

from moka_images.config.manifests import load_declarations


def test_unchanged_declarations_are_not_read_again(tree: Tree) -> None:
    first = load_declarations(tree.root)
    assert load_declarations(tree.root) is first


def test_a_change_of_any_file_is_read_at_once_even_of_the_same_size(tree: Tree) -> None:
    first = load_declarations(tree.root)
    text = (tree.root / "manifests/data-eng/etl-jobs.yaml").read_text()
    assert "version: 1.0.0" in text
    tree.write("manifests/data-eng/etl-jobs.yaml", text.replace("version: 1.0.0", "version: 1.0.1"))
    second = load_declarations(tree.root)
    assert second is not first and second.get("data-eng/etl-jobs").version == "1.0.1"
    tree.write("manifests/data-eng/etl/config.yaml", "regions: [south]\n")  # a file a manifest uses
    assert load_declarations(tree.root) is not second
