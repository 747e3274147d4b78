"""Property: for ANY policy or exceptions file, loading either gives values the verdict can use (known
severities, non-blank licences, waivers with an ID, an owner and a real date) or raises ManifestError naming
the file, and the field whenever the file held a mapping. Never any other exception."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from hostile import RAW_ATTACKS, any_value, dump, examples, hostile_text, maybe
from hypothesis import given, settings
from hypothesis import strategies as st

from moka_images.config.policies import load_exceptions, load_policy
from moka_images.errors import ManifestError
from moka_images.findings import Severity

SHOWN = "policies/test.yaml"
SEVERITY = st.sampled_from(["UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL", "high", "Critical", "NONE", ""])
POLICY = {"vulnerabilities": {"max_severity_with_fix": "HIGH", "max_severity_without_fix": "CRITICAL"},
          "licenses": {"deny": ["AGPL-3.0"]}}
WAIVER = {"id": "CVE-2099-0001", "image": "spark-3.5", "reason": "trusted input", "owner": "team@example.com",
          "expires": date(2026, 12, 31)}


@st.composite
def policy(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(any_value)
    rules = {k: draw(st.one_of(SEVERITY, maybe(v))) for k, v in POLICY["vulnerabilities"].items()
             if draw(st.integers(0, 5))}
    doc: dict[Any, Any] = {"vulnerabilities": draw(maybe(rules)),
                           "licenses": {"deny": draw(st.lists(st.one_of(st.just("MIT"), hostile_text), max_size=3))}}
    if draw(st.integers(0, 4)) == 0:
        doc[draw(hostile_text)] = draw(any_value)
    return doc


@st.composite
def exceptions(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(any_value)
    waivers = [{k: draw(maybe(v)) for k, v in WAIVER.items() if draw(st.integers(0, 6))}
               for _ in range(draw(st.integers(0, 3)))]
    return {"exceptions": draw(maybe(waivers))}


def write(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump(doc))


def check_error(error: ManifestError, mapping: bool) -> None:
    assert error.problems
    for problem in error.problems:
        assert problem.file == SHOWN and problem.message.strip(), problem
        assert problem.field or not mapping or "bytes, over the" in problem.message, problem


@settings(max_examples=examples(100), deadline=None)
@given(doc=policy())
def test_any_policy_loads_usably_or_names_its_problems(doc: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="moka-fuzz-") as tmp:
        path = Path(tmp) / "test.yaml"
        write(path, doc)
        try:
            loaded = load_policy(path, SHOWN)
        except ManifestError as exc:
            check_error(exc, isinstance(doc, dict))
            return
        assert isinstance(loaded.vulnerabilities.with_fix, Severity)
        assert isinstance(loaded.vulnerabilities.without_fix, Severity)
        assert all(isinstance(d, str) and d.strip() for d in loaded.licenses.deny)


@settings(max_examples=examples(100), deadline=None)
@given(doc=exceptions())
def test_any_exception_list_loads_usably_or_names_its_problems(doc: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="moka-fuzz-") as tmp:
        path = Path(tmp) / "exceptions.yaml"
        write(path, doc)
        try:
            loaded = load_exceptions(path, SHOWN)
        except ManifestError as exc:
            check_error(exc, isinstance(doc, dict))
            return
        for waiver in loaded:
            assert waiver.id[0].isalpha() and waiver.owner.strip() and waiver.reason.strip()
            assert isinstance(waiver.expires, date)
            assert waiver.covers(waiver.id, waiver.image if waiver.image != "*" else "any")


@settings(max_examples=examples(30), deadline=None)
@given(attack=st.sampled_from(sorted(RAW_ATTACKS)), n=st.integers(0, 20), which=st.booleans())
def test_raw_yaml_attacks_on_policies_are_manifest_errors(attack: str, n: int, which: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="moka-fuzz-") as tmp:
        path = Path(tmp) / "x.yaml"
        data = RAW_ATTACKS[attack](n)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        try:
            (load_policy if which else load_exceptions)(path, SHOWN)
        except ManifestError as exc:
            check_error(exc, mapping=False)
        else:
            raise AssertionError(f"{attack} was accepted")
