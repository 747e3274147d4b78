"""Property: for any manifest the model accepts, the generated team Dockerfile has exactly the template's
instructions: no value a team writes (apt pins, ENV names and values) can start a new instruction or reach a
shell unquoted."""

from __future__ import annotations

from typing import Any

from hostile import check_recipe, examples, hostile_text
from hypothesis import given, settings
from hypothesis import strategies as st

from moka_images.config.manifests import TeamManifest
from moka_images.config.validation import validate

APT = st.from_regex(r"[a-z0-9][a-z0-9+.-]{1,20}=([0-9]{1,2}:)?[0-9][A-Za-z0-9.+~-]{0,15}", fullmatch=True)
ENV_NAME = st.from_regex(r"[A-Z_][A-Z0-9_]{0,20}", fullmatch=True)
ENV_VALUE = st.from_regex(r"[A-Za-z0-9 _.,:/=+@%~^*-]{0,80}", fullmatch=True)
# Values right at the charset's edges, and hostile ones the model must turn away before they get here.
EDGES = st.sampled_from(["", " ", "  leading", "trailing ", "a=b=c", "*", "%PATH%", "~root", "^x", "a,b", "@x"])


@st.composite
def accepted(draw: st.DrawFn) -> dict[str, Any]:
    """A manifest document with random apt pins and environment; hostile strings mixed in now and then."""
    env_values = st.one_of(ENV_VALUE, EDGES, hostile_text)
    return {"name": "app", "team": "team", "version": "1.0.0", "base": "spark-3.5", "description": "d",
            "apt": {"packages": draw(st.lists(st.one_of(APT, APT, hostile_text), max_size=5,
                                              unique_by=lambda p: p.partition("=")[0]))},
            "env": draw(st.dictionaries(st.one_of(ENV_NAME, ENV_NAME, hostile_text), env_values, max_size=6))}


@settings(max_examples=examples(200), deadline=None)
@given(doc=accepted(), wheels=st.booleans(), files=st.booleans(), smoke=st.booleans(), jars=st.booleans())
def test_no_accepted_value_starts_an_instruction(doc: dict[str, Any], wheels: bool, files: bool, smoke: bool,
                                                 jars: bool) -> None:
    manifest, problems = validate(TeamManifest, doc, "manifests/team/app.yaml")
    if manifest is None:
        assert problems and all(p.file == "manifests/team/app.yaml" and p.field for p in problems), problems
        return
    check_recipe(list(manifest.apt.packages), wheels, files, smoke, dict(manifest.env), jars)


def test_the_check_would_catch_an_injected_instruction() -> None:
    """The property has teeth: a value with a newline, had the model let it through, breaks the check."""
    try:
        check_recipe(["jq=1.6\nRUN touch /tmp/pwn"], False, False, False, {})
    except AssertionError:
        pass
    else:
        raise AssertionError("an injected RUN went unnoticed")
    try:
        check_recipe([], False, False, False, {"A": "x\nRUN id"})
    except AssertionError:
        return
    raise AssertionError("an injected line in ENV went unnoticed")
