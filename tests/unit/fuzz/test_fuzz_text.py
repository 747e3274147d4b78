"""Property, at the level of raw text: take a valid file of each kind (settings, base image matrix, team manifest,
policy, exceptions, advisories), break it once in a way YAML or the model must refuse (a tagged scalar that does
not convert, an impossible date, a 5,000-digit number, an odd tag, an alias, a duplicate key, nesting past the
limit, a tab in the indentation, an unknown key in odd Unicode), maybe add noise (odd Unicode, huge and
negative numbers, unused anchors, comments, quoting), and run `moka-images check` through the CLI entry in
this process. It returns exit 2 with every problem located (a file of the project, a line in the broken file)
and no traceback; without noise, a problem sits on the broken line.

Examples: a fixed count with a fixed seed (derandomized) by default, as CI runs it; MOKA_FUZZ_SCALE=k runs k
times as many with a random seed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hostile import SCALE, examples
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from project_copy import copy_project

from moka_images.cli import main

WAIVERS = ("exceptions:\n  - id: CVE-2099-0001\n    image: spark-3.5\n    reason: tracked in DATA-1\n"
           "    owner: data-platform@example.com\n    expires: 2999-12-31\n")
KINDS = {"settings": "moka.yaml", "base image matrix": "images/spark/image.yaml",
         "team manifest": "manifests/data-eng/etl-jobs.yaml", "policy": "policies/prod.yaml",
         "exceptions": "policies/exceptions.yaml", "advisories": "security/advisories.yaml"}
# `key: value` with a value on the line (the lines a mutation may touch), optionally a list item.
VALUE_LINE = re.compile(r"^(?P<indent> *)(?P<item>- )?(?P<key>[A-Za-z_][A-Za-z0-9_]*): (?P<value>[^#\s].*)$")
FUZZ = settings(max_examples=examples(25), derandomize=SCALE == 1, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# Values no field of any file accepts, and the part of the message that says so.
BAD_VALUES = [
    ("!!int abc", "is not an integer"), ("!!float abc", "is not a number"), ("!!timestamp soon", "is not a date"),
    ("!!bool maybe", "is not true or false"), ("!!int 0x", "is not an integer"), ("!!float 1.2.3", "is not a number"),
    ("2024-02-30", "is not a date"), ("2099-13-01", "is not a date"), ("2023-02-29", "is not a date"),
    ("2024-00-10", "is not a date"), ("2024-06-31 10:00:00", "is not a date"),
    ("9" * 5000, "too many digits"), ("-" + "9" * 5000, "too many digits"),
    ("!!set {a, b}", "is not allowed"), ("!!binary aGVsbG8=", "is not allowed"), ("!custom x", "is not allowed"),
    ("!!python/name:os.system", "is not allowed"), ("!!omap [a: 1]", "is not allowed"),
    ("[" * 25 + "]" * 25, "nested too deeply"), ("{a: " * 25 + "1" + "}" * 25, "nested too deeply"),
]
ODD_KEYS = ["naïve", "ﬁle", "ｎａｍｅ", "\u202eeman", "名前", "🚀", "name\u200b", "ΝΑΜΕ", "", " "]
ODD_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=24)
NUMBERS = ["-1", "0", "-0", "1e309", "-1e309", ".nan", "12345678901234567890", "-0x10", "0o17", "1_000", "+12"]


def value_lines(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if VALUE_LINE.match(line)]


def key_indent(match: re.Match[str]) -> str:
    """The indentation of the key itself (a list item's key sits two columns right of its dash)."""
    return match["indent"] + ("  " if match["item"] else "")


def set_value(line: str, value: str) -> str:
    match = VALUE_LINE.match(line)
    assert match
    return f"{match['indent']}{match['item'] or ''}{match['key']}: {value}"


@st.composite
def broken(draw: st.DrawFn, text: str) -> tuple[str, int, str, bool]:
    """The text broken once (plus noise, maybe): (text, 1-based line of the break, message part, noisy)."""
    lines = text.splitlines()
    candidates = value_lines(lines)
    noise = draw(st.lists(st.tuples(st.sampled_from(candidates), st.integers(0, 5), ODD_TEXT,
                                    st.sampled_from(NUMBERS)), max_size=3))
    for n, (i, how, odd, number) in enumerate(noise):
        match = VALUE_LINE.match(lines[i])
        if match is None:
            continue
        lines[i] = [set_value(lines[i], json.dumps(odd)), set_value(lines[i], number),
                    set_value(lines[i], f"&noise{n} {match['value']}"), lines[i] + " # ünïcode ✓ comment",
                    set_value(lines[i], json.dumps(match["value"].strip("'\""))), lines[i] + "\n"][how]
    lines = "\n".join(lines).splitlines()  # noise may have added a blank line
    candidates = value_lines(lines)
    at = draw(st.sampled_from(candidates))
    match = VALUE_LINE.match(lines[at])
    assert match
    kind = draw(st.sampled_from(["value"] * 4 + ["duplicate", "tab", "odd key", "alias"]))
    event(f"break: {kind}, {'with' if noise else 'no'} noise")
    if kind == "value":
        value, message = draw(st.sampled_from(BAD_VALUES))
        lines[at] = set_value(lines[at], value)
        line = at + 1
    elif kind == "duplicate":
        lines.insert(at + 1, f"{key_indent(match)}{match['key']}: {match['value']}")
        line, message = at + 2, "duplicate key"
    elif kind == "tab":
        lines[at] = "\t" + lines[at].lstrip(" ")
        line, message = at + 1, "not valid YAML"
    elif kind == "odd key":
        lines.insert(at + 1, f"{key_indent(match)}{json.dumps(draw(st.sampled_from(ODD_KEYS)))}: 1")
        line, message = at + 2, ""
    else:  # an alias to an anchor on an earlier line
        first = draw(st.sampled_from([i for i in candidates if i < at] or [at]))
        if first == at:
            lines[at] = set_value(lines[at], "*nowhere")
            message = "not valid YAML"  # an alias to no anchor
        else:
            anchored = VALUE_LINE.match(lines[first])
            assert anchored
            lines[first] = set_value(lines[first], f"&brk {anchored['value']}")
            lines[at] = set_value(lines[at], "*brk")
            message = "aliases are not allowed"
        line = at + 1
    return "\n".join(lines) + "\n", line, message, bool(noise)


@pytest.fixture(scope="module")
def project() -> Iterator[Path]:
    """One copy of the project for the module; each example writes the file it breaks and puts it back."""
    with tempfile.TemporaryDirectory(prefix="moka-fuzz-text-") as tmp:
        root = copy_project(Path(tmp) / "project")
        (root / KINDS["exceptions"]).write_text(WAIVERS)
        yield root


def run_check(root: Path) -> tuple[int, list[dict[str, object]]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check", "--root", str(root), "--json"])  # raises if anything escapes: no traceback allowed
    assert "Traceback" not in out.getvalue() + err.getvalue(), err.getvalue()
    return code, json.loads(out.getvalue())["problems"]


def test_the_unbroken_project_passes(project: Path) -> None:
    assert run_check(project) == (0, [])


def fuzz(kind: str) -> Callable[..., None]:
    rel = KINDS[kind]

    @FUZZ
    @given(data=st.data())
    def run(project: Path, data: st.DataObject) -> None:
        path = project / rel
        original = path.read_text()
        text, line, message, noisy = data.draw(broken(original))
        path.write_text(text)
        try:
            code, problems = run_check(project)
        finally:
            path.write_text(original)
        assert code == 2 and problems, f"{kind}: the break at line {line} was accepted:\n{text}"
        for p in problems:
            assert isinstance(p["file"], str) and os.path.lexists(project / p["file"]), p
            assert isinstance(p["message"], str) and p["message"].strip(), p
            if p["file"] == rel:
                assert isinstance(p["line"], int) and 1 <= p["line"] <= len(text.splitlines()) + 1, p
            else:
                assert p["line"] or p["field"], p
        if not noisy:
            at_break = [p for p in problems if p["file"] == rel and p["line"] == line]
            assert any(message in str(p["message"]) for p in at_break), (line, message, problems)

    return run


test_settings_text = fuzz("settings")
test_base_image_matrix_text = fuzz("base image matrix")
test_team_manifest_text = fuzz("team manifest")
test_policy_text = fuzz("policy")
test_exceptions_text = fuzz("exceptions")
test_advisories_text = fuzz("advisories")
