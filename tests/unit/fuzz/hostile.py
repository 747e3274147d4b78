"""Hypothesis strategies for hostile declaration data, and the check of a generated Dockerfile: strings with shell metacharacters, newlines, unicode,
path traversal and huge lengths; random YAML structures; raw YAML attacks (alias bombs, deep nesting, tags)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from hypothesis import strategies as st

from moka_images.config.validation import MAX_YAML_BYTES
from moka_images.recipes import team as recipe

# MOKA_FUZZ_SCALE=50 runs fifty times the examples (a deep run by hand or nightly); the default keeps the
# unit suite fast.
SCALE = max(1, int(os.environ.get("MOKA_FUZZ_SCALE") or 1))
INSTRUCTION = re.compile(r"^(ARG|FROM|USER|RUN|COPY|ENV|LABEL) ")
APT_WORD = re.compile(r"^[a-z0-9][a-z0-9+.-]+=(\d+:)?\d[A-Za-z0-9.+~-]*$")

METACHARS = list(";|&$()`<>\\\"'\n\r\t*?![]{}#~=%") + ["\x00", "\x1b", "\u2028", "\u202e", "$(id)", "${HOME}",
                                                         "`id`", "&&", "||", " ", "\nRUN id", "\r\nFROM evil"]
NASTY = [
    "", " ", ".", "..", "../", "../../etc/passwd", "/etc/passwd", "/", "~", "~/x", "-rf", "--help", "-", "a//b",
    "./x", "x/../y", "x/./y", "x/", "\\..\\..\\x", "..%2f..%2fx", "C:\\x", "; rm -rf / #", "$(touch /tmp/pwn)",
    "`touch /tmp/pwn`", "a|b", "a && b", "<x>", "a\nRUN touch /tmp/pwn", "a\\\nRUN touch /tmp/pwn",
    "pyyaml==6.0.2; os_name=='x'", "pyyaml==6.0.2 --index-url http://127.0.0.1/", "git+https://127.0.0.1/x",
    "pyyaml @ file:///etc", "-r /etc/passwd", "pyyaml>=6", "PyYAML==6.0.2", "pyyaml[extra]==1", "jq=1.6\nRUN x",
    "jq=1.6 && curl x", "jq", "LD_PRELOAD", "PATH", "SPARK_HOME", "lower", "1ABC", "A-B", "é", "ß", "🚀",
    "\u0130", "\ufeffname", "NaN", "null", "~", "true", "0x10", "1e5", "2024-01-01", "3.5", "1.0.0+build",
    "1.0.0-rc.1", "01.0.0", "1.0", "linux/amd64 ", "linux/AMD64", "windows/amd64", "x" * 300, "x" * 70_000,
    "/opt/app/.moka", ".moka/smoke.py", "job.PY", "job.py\n", "a\x00b", "\u2028RUN x",
]


def examples(n: int) -> int:
    """`n` examples, times MOKA_FUZZ_SCALE."""
    return n * SCALE


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(doc: Any) -> str:
    """YAML for `doc` without anchors (a value used twice is written twice: aliases are refused on load)."""
    return yaml.dump(doc, Dumper=_NoAliasDumper, allow_unicode=True)


def _injected(draw: st.DrawFn) -> str:
    plain = st.text("abcdefghijklmnopqrstuvwxyz0123456789.-_/", max_size=12)
    return draw(plain) + draw(st.sampled_from(METACHARS)) + draw(plain)


hostile_text = st.one_of(
    st.sampled_from(NASTY),
    st.composite(_injected)(),
    st.text(max_size=40),  # any unicode, surrogates excluded
    st.text(st.characters(codec="ascii"), max_size=40),
)

scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), hostile_text,
                   st.dates())

any_value = st.recursive(
    scalar,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.one_of(hostile_text, st.integers(), st.booleans()), children,
                                               max_size=4)),
    max_leaves=12,
)


def maybe(valid: Any) -> st.SearchStrategy[Any]:
    """Mostly the valid value, else a hostile string or any structure (a field fuzzed one at a time)."""
    return st.one_of(st.just(valid), st.just(valid), hostile_text, any_value)


def _bomb(depth: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, depth)]
    return "\n".join(lines) + "\n"


RAW_ATTACKS: dict[str, Any] = {
    "alias bomb": lambda n: _bomb(3 + n % 8),
    "merge key alias": lambda n: "base: &b {name: x}\nother:\n  <<: *b\n",
    "deep flow nesting": lambda n: "name: " + "[" * (100 * n + 50) + "]" * (100 * n + 50) + "\n",
    "deep block nesting": lambda n: "".join(" " * i + f"k{i}:\n" for i in range(20 * n + 10)),
    "deep mapping nesting": lambda n: "name: " + "{a: " * (100 * n + 50) + "1" + "}" * (100 * n + 50) + "\n",
    "oversize": lambda n: "# " + "x" * (MAX_YAML_BYTES + n) + "\n",
    "python tag": lambda n: "name: !!python/object/apply:os.system ['touch /tmp/pwn']\n",
    "unknown tag": lambda n: "name: !custom x\n",
    "binary": lambda n: "name: !!binary aGVsbG8=\n",
    "complex key": lambda n: "? [a, b]\n: 1\n",
    "mapping key": lambda n: "? {a: 1}\n: 1\n",
    "duplicate key": lambda n: "name: a\nname: b\n",
    "two documents": lambda n: "name: a\n---\nname: b\n",
    "no document": lambda n: "",
    "only a comment": lambda n: "# nothing\n",
    "scalar top": lambda n: "just a string\n",
    "list top": lambda n: "- a\n- b\n",
    "bad indentation": lambda n: "name: a\n  team: b\n -x\n",
    "tab indentation": lambda n: "name:\n\tteam: x\n",
    "control char": lambda n: "name: a\x07b\n",
    "bom": lambda n: "\ufeffname: x\n",
    "nul": lambda n: "name: a\x00\n",
    "non utf-8": lambda n: b"name: \xff\xfe\xfd\n",
    "utf-16": lambda n: "name: x\n".encode("utf-16"),
    "set": lambda n: "name: !!set {a, b}\n",
    "timestamp": lambda n: "version: 2024-01-01 10:00:00\n",
}


def check_recipe(apt: Sequence[str], wheels: bool, files: bool, smoke: bool, env: Mapping[str, str],
                 jars: bool = False) -> str:
    """Render the team Dockerfile and check it has exactly the template's instructions: user data starts none,
    each ENV value reads back as given, each apt word is a plain `name=version`. Returns the text."""
    text = recipe.render(apt_packages=list(apt), has_wheels=wheels, has_jars=jars, has_files=files,
                         has_smoke=smoke, env=env)
    logical = text.replace("\\\n", "").splitlines()
    expected = ["ARG", "FROM", "USER", *(["RUN"] if apt else []), *(["COPY", "RUN"] if wheels else []),
                *(["COPY"] if jars else []), *(["COPY"] if files else []), *(["COPY"] if smoke else []),
                *["ENV"] * len(env), "USER"]
    assert [line.split(" ", 1)[0] for line in logical] == expected, text
    assert all(INSTRUCTION.match(line) for line in logical), text
    for line in text.splitlines():
        assert INSTRUCTION.match(line) or line.startswith(" && "), f"a line not of the template: {line!r}"
    env_lines = [line for line in logical if line.startswith("ENV ")]
    for line, (key, value) in zip(env_lines, sorted(env.items()), strict=True):
        name, _, quoted = line[4:].partition("=")
        assert name == key and re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), line
        assert json.loads(quoted) == value and not set(value) & set("$`\"\\\n"), line
    if apt:
        run = next(line for line in logical if line.startswith("RUN apt-get"))
        assert " ".join(apt) in run and all(APT_WORD.fullmatch(word) for word in apt), run
    return text
