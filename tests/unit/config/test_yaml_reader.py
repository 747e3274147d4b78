"""The YAML reader under every loader: a value YAML cannot read is a located problem (file, line, field, fix),
never a ValueError, KeyError or AttributeError; the rest of the file is still read and validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from moka_images.config.policies import load_exceptions, load_policy
from moka_images.config.validation import Strict, load, read_yaml
from moka_images.errors import ManifestError


class Sample(Strict):
    name: str
    count: int = 0


@pytest.mark.parametrize(("text", "line", "field", "message"), [
    ("name: x\ncount: !!int abc\n", 2, "count", "`abc` is not an integer"),
    ("name: x\ncount: !!float abc\n", 2, "count", "`abc` is not a number"),
    ("name: !!timestamp soon\n", 1, "name", "`soon` is not a date"),
    ("name: !!bool maybe\n", 1, "name", "`maybe` is not true or false"),
    ("name: 2024-02-30\n", 1, "name", "`2024-02-30` is not a date (day is out of range for month)"),
    ("name: x\ncount: " + "9" * 5000 + "\n", 2, "count", "is not an integer (too many digits)"),
    ("name: !custom x\n", 1, "name", "the tag `!custom` is not allowed"),
    ("name: !!set {a, b}\n", 1, "name", "the tag `!!set` is not allowed"),
    ("name: !!binary aGVsbG8=\n", 1, "name", "the tag `!!binary` is not allowed"),
    ("name: !!python/object/apply:os.system ['true']\n", 1, "name", "is not allowed"),
    ("name: !!map [x]\n", 1, "name", "the tag `!!map` does not fit this value"),
    ("name: !!seq x\n", 1, "name", "the tag `!!seq` does not fit this value"),
    ("name: !!str [x]\n", 1, "name", "the tag `!!str` does not fit this value"),
    ("base: &b {name: x}\n<<: {count: 1}\n", 2, '"<<"', "merge keys (`<<`) are not allowed"),
    ("name: x\nname: y\n", 2, "name", "duplicate key `name`"),
    ("name: x\n? [a, b]\n: 1\n", 2, '"?"', "a key must be a plain value"),
    ("a: &a [x, x]\nname: *a\n", 2, "name", "YAML aliases are not allowed"),
    ("name:\n  - " + "[" * 30 + "]" * 30 + "\n", 2, "", "nested too deeply"),
    ("name: x\n\tcount: 1\n", 2, "", "not valid YAML"),
    ("name: [x\n", 2, "", "not valid YAML"),
    ("name: a\x07b\n", 1, "", "character #x0007 is not allowed"),
])
def test_a_value_yaml_cannot_read_is_a_located_problem(tmp_path: Path, text: str, line: int, field: str,
                                                       message: str) -> None:
    path = tmp_path / "sample.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as caught:
        load(Sample, path, "sample.yaml")
    found = [p for p in caught.value.problems if message in p.message]
    assert found, caught.value.problems
    assert (found[0].file, found[0].line, found[0].field) == ("sample.yaml", line, field)


def test_every_bad_value_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "sample.yaml"
    path.write_text("name: !!int abc\ncount: !!bool maybe\nextra: 1\n")
    with pytest.raises(ManifestError) as caught:
        load(Sample, path, "sample.yaml")
    assert [(p.line, p.field, p.message.split(" (")[0]) for p in caught.value.problems] == [
        (1, "name", "`abc` is not an integer"), (2, "count", "`maybe` is not true or false"),
        (3, "extra", "unknown key")]  # the refused values are not reported again by validation


def test_a_refused_value_that_would_pass_validation_still_fails_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sample.yaml"
    path.write_text("name: 2024-02-30\n")  # the raw text stands in, and is a valid `name`
    doc, problems = read_yaml(path, "sample.yaml")
    assert doc is not None and doc.data == {"name": "2024-02-30"} and len(problems) == 1
    with pytest.raises(ManifestError):
        load(Sample, path, "sample.yaml")


def test_validation_problems_carry_the_line_of_their_key(tmp_path: Path) -> None:
    path = tmp_path / "sample.yaml"
    path.write_text("# a comment\n\nname: x\ncount: lots\nnested:\n  deep: 1\n")
    with pytest.raises(ManifestError) as caught:
        load(Sample, path, "sample.yaml")
    assert sorted((p.line, p.field) for p in caught.value.problems) == [(4, "count"), (5, "nested")]
    assert str(caught.value.problems[0]).startswith("sample.yaml:4: count: ")


def test_an_impossible_expiry_in_the_exceptions_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "exceptions.yaml"
    path.write_text("exceptions:\n  - id: CVE-2099-0001\n    image: '*'\n    reason: r\n    owner: o\n"
                    "    expires: 2099-13-01\n")
    with pytest.raises(ManifestError) as caught:
        load_exceptions(path, "policies/exceptions.yaml")
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.field) == ("policies/exceptions.yaml", 6, "exceptions.0.expires")
    assert "month must be in 1..12" in problem.message


def test_a_tagged_severity_in_a_policy_is_located(tmp_path: Path) -> None:
    path = tmp_path / "prod.yaml"
    path.write_text("vulnerabilities:\n  max_severity_with_fix: !!int HIGH\n  max_severity_without_fix: HIGH\n")
    with pytest.raises(ManifestError) as caught:
        load_policy(path, "policies/prod.yaml")
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, "vulnerabilities.max_severity_with_fix")]


@pytest.mark.parametrize("text", ["name: x\n\tcount: 1\n", "\tname: x\n"])
def test_a_tab_in_the_indentation_says_so(tmp_path: Path, text: str) -> None:
    path = tmp_path / "sample.yaml"
    path.write_text(text)
    _, problems = read_yaml(path, "sample.yaml")
    assert [p.fix for p in problems] == ["indent with spaces, not tabs"]
