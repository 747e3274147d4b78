"""Policy and exception files: the repository's own are valid; bad ones name the file and the field."""

from __future__ import annotations

import itertools
from datetime import date
from pathlib import Path

import pytest

from moka_images.config.policies import exceptions_path, load_exceptions, load_policy
from moka_images.errors import ManifestError
from moka_images.findings import Severity
from moka_images.models import Environment

ROOT = Path(__file__).resolve().parents[3]
_EXCEPTION = """exceptions:
  - id: CVE-2099-0001
    image: spark-base
    reason: only used on trusted input
    owner: data-platform@example.com
    expires: 2026-12-31
"""


@pytest.mark.parametrize("env", list(Environment))
def test_every_environment_has_a_valid_policy(env: Environment) -> None:
    policy = load_policy(ROOT / "policies" / f"{env.value}.yaml")
    assert policy.vulnerabilities.with_fix <= policy.vulnerabilities.without_fix


def test_later_environments_are_never_more_lenient() -> None:
    policies = [load_policy(ROOT / "policies" / f"{env.value}.yaml") for env in Environment]
    for earlier, later in itertools.pairwise(policies):
        assert later.vulnerabilities.with_fix <= earlier.vulnerabilities.with_fix
        assert later.vulnerabilities.without_fix <= earlier.vulnerabilities.without_fix
        assert set(earlier.licenses.deny) <= set(later.licenses.deny)
    assert policies[0].vulnerabilities.with_fix < Severity.CRITICAL  # a fixable CRITICAL never enters test


def test_the_repository_exceptions_file_is_valid() -> None:
    load_exceptions(exceptions_path(ROOT / "policies" / "test.yaml"))


def test_an_exception_loads_with_a_date(tmp_path: Path) -> None:
    path = tmp_path / "exceptions.yaml"
    path.write_text(_EXCEPTION)
    (ex,) = load_exceptions(path)
    assert ex.expires == date(2026, 12, 31)
    assert ex.covers("CVE-2099-0001", "spark-base") and not ex.covers("CVE-2099-0001", "spark-py")
    assert not ex.expired(date(2026, 12, 31)) and ex.expired(date(2027, 1, 1))


def test_a_missing_exceptions_file_means_none(tmp_path: Path) -> None:
    assert load_exceptions(tmp_path / "exceptions.yaml") == ()


@pytest.mark.parametrize(("edit", "field", "message"), [
    (lambda t: t.replace("    owner: data-platform@example.com\n", ""), "exceptions.0.owner", "required field is missing"),
    (lambda t: t.replace("    expires: 2026-12-31\n", ""), "exceptions.0.expires", "required field is missing"),
    (lambda t: t.replace("data-platform@example.com", '"  "'), "exceptions.0.owner", "must not be blank"),
    (lambda t: t.replace("2026-12-31", "next year"), "exceptions.0.expires", "date"),
    (lambda t: t.replace("    reason:", "    reasn:"), "exceptions.0.reasn", "unknown key"),
])
def test_bad_exceptions_name_the_file_and_field(tmp_path: Path, edit, field: str, message: str) -> None:
    path = tmp_path / "exceptions.yaml"
    path.write_text(edit(_EXCEPTION))
    with pytest.raises(ManifestError) as err:
        load_exceptions(path, "policies/exceptions.yaml")
    problems = {(p.file, p.field): p for p in err.value.problems}
    assert ("policies/exceptions.yaml", field) in problems, err.value.problems
    assert message in problems[("policies/exceptions.yaml", field)].message


def test_every_problem_of_a_policy_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "prod.yaml"
    path.write_text("vulnerabilities:\n  max_severity_with_fx: HIGH\n  max_severity_without_fix: SEVERE\n"
                    "secrets: allow\n")
    with pytest.raises(ManifestError) as err:
        load_policy(path, "policies/prod.yaml")
    found = {p.field: p for p in err.value.problems}
    assert found["vulnerabilities.max_severity_with_fx"].fix == "did you mean `max_severity_with_fix`?"
    assert "vulnerabilities.max_severity_without_fix" in found
    assert found["secrets"].message == "unknown key"  # secrets always block: there is nothing to configure
    assert all(p.file == "policies/prod.yaml" for p in err.value.problems)
