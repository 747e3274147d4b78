"""`moka-images check`, through the CLI entry in-process, on a copy of the project: each bad input of the issue is
exit 2 with a message naming the file, the line and the field, and no traceback; all problems come at once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from project_copy import edit

from moka_images.cli import main
from moka_images.stages.checking import check

ETL = "manifests/data-eng/etl-jobs.yaml"
WAIVER = ("exceptions:\n  - id: CVE-2099-0001\n    image: spark-3.5\n    reason: tracked in DATA-1\n"
          "    owner: data-platform@example.com\n    expires: {expires}\n")


def run(root: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str]:
    code = main(["check", "--root", str(root), *flags])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out + err


def problems(root: Path, capsys: pytest.CaptureFixture[str]) -> list[tuple[str, int | None, str, str]]:
    code, out = run(root, capsys, "--json")
    doc = json.loads(out)
    assert code == (2 if doc["problems"] else 0) and doc["ok"] is (code == 0)
    return [(p["file"], p["line"], p["field"], p["message"]) for p in doc["problems"]]


def test_the_project_as_committed_has_no_problem(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(project, capsys)
    assert code == 0 and out.startswith("no problems; valid: 2 profiles, 2 base images, 2 team images, 4 policies")


@pytest.mark.parametrize(("rel", "old", "new", "line", "field", "message"), [
    (ETL, "version: 1.1.0", "version: 2024-02-30", 4, "version", "`2024-02-30` is not a date"),
    ("images/spark/image.yaml", "version: 1.1.1", "version: 2024-02-30", 17, "lines.0.version", "is not a date"),
    (ETL, "timeout_seconds: 300", "timeout_seconds: !!int abc", 22, "smoke.timeout_seconds", "`abc` is not an integer"),
    (ETL, "timeout_seconds: 300", "timeout_seconds: !!float abc", 22, "smoke.timeout_seconds", "is not a number"),
    (ETL, "version: 1.1.0", "version: !!timestamp soon", 4, "version", "`soon` is not a date"),
    (ETL, "description: Nightly", "description: !!bool maybe #", 6, "description", "`maybe` is not true or false"),
    ("moka.yaml", "local_stack: true", "local_stack: !!bool maybe", 7, "profiles.local.local_stack",
     "`maybe` is not true or false"),
    ("policies/exceptions.yaml", "exceptions: []", WAIVER.format(expires="2099-13-01"), 8, "exceptions.0.expires",
     "`2099-13-01` is not a date (month must be in 1..12)"),
    ("security/advisories.yaml", "severity: CRITICAL", "severity: !!bool maybe", 6, "vulnerabilities.0.severity",
     "`maybe` is not true or false"),
])
def test_each_bad_value_is_exit_2_naming_file_line_and_field(project: Path, capsys: pytest.CaptureFixture[str],
                                                              rel: str, old: str, new: str, line: int, field: str,
                                                              message: str) -> None:
    edit(project, rel, old, new)
    found = problems(project, capsys)
    assert [(f, ln, fld) for f, ln, fld, msg in found if message in msg] == [(rel, line, field)], found
    code, out = run(project, capsys)
    assert code == 2 and f"{rel}:{line}: {field}: " in out and "fix: " in out


def test_a_broken_image_file_does_not_hide_a_team_on_an_unknown_base(project: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, "images/spark/image.yaml", "version: 1.1.1", "version: 2024-02-30")
    edit(project, ETL, "base: spark-3.5", "base: spark-9")
    assert [(f, fld) for f, _, fld, _ in problems(project, capsys)] == [
        ("images/spark/image.yaml", "lines.0.version"), (ETL, "base")]


def test_an_image_file_yaml_cannot_read_leaves_its_bases_unjudged_but_not_others(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "images/spark/image.yaml").write_text("name: spark\nlines: [\n")
    edit(project, "manifests/ml-platform/feature-store.yaml", "base: spark-4.0", "base: ubuntu-24.04")
    assert [(f, fld) for f, _, fld, _ in problems(project, capsys)] == [
        ("images/spark/image.yaml", ""), ("manifests/ml-platform/feature-store.yaml", "base")]


def test_every_problem_in_every_file_comes_in_one_run(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, ETL, "version: 1.1.0", "version: 2024-02-30")
    edit(project, ETL, "base: spark-3.5", "base: spark-9")
    edit(project, ETL, "timeout_seconds: 300", "timeout_seconds: 5")
    edit(project, "policies/prod.yaml", "max_severity_with_fix: MEDIUM", "max_severity_with_fix: SEVERE")
    edit(project, "moka.yaml", 'account: "100000000002"', 'account: "2"')
    shutil.copy(project / ETL, project / "manifests/data-eng/etl-jobs-v2.yml")
    found = [(f, fld) for f, _, fld, _ in problems(project, capsys)]
    assert sorted(found) == sorted([
        (ETL, "version"), (ETL, "smoke.timeout_seconds"), (ETL, "base"),
        ("manifests/data-eng/etl-jobs-v2.yml", ""), ("policies/prod.yaml", "vulnerabilities.max_severity_with_fix"),
        ("moka.yaml", "profiles.local.environments.dev.account")])


@pytest.mark.parametrize(("rel", "message"), [
    ("manifests/data-eng/jobs/etl-jobs.yaml", "a manifest in a subfolder is not read"),
    ("manifests/data-eng/etl-jobs-v2.yml", "manifests end in .yaml"),
    ("manifests/data-eng/etl-jobs-v2.YAML", "manifests end in .yaml"),
])
def test_a_manifest_out_of_its_place_is_reported(project: Path, capsys: pytest.CaptureFixture[str], rel: str,
                                                 message: str) -> None:
    (project / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(project / ETL, project / rel)
    assert [(f, msg.startswith(message)) for f, _, _, msg in problems(project, capsys)] == [(rel, True)]


def test_a_broken_prod_policy_is_found_at_check_not_at_the_prod_promotion(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, "policies/prod.yaml", "max_severity_without_fix: HIGH", "max_severity_without_fx: HIGH")
    assert problems(project, capsys) == [("policies/prod.yaml", 2, "vulnerabilities.max_severity_without_fix",
                                          "required field is missing"),
                                         ("policies/prod.yaml", 4, "vulnerabilities.max_severity_without_fx",
                                          "unknown key")]


def test_policies_no_environment_uses_or_that_are_missing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "policies/staging.yaml").rename(project / "policies/staging.yml")
    found = [(f, msg) for f, _, _, msg in problems(project, capsys)]
    assert found == [("policies/staging.yaml", "missing: it is the policy of staging (profile local, production)"),
                     ("policies/staging.yml", "no environment uses this policy")]


def test_an_expired_waiver_is_reported_with_its_owner(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, "policies/exceptions.yaml", "exceptions: []", WAIVER.format(expires="2020-01-31"))
    code, out = run(project, capsys)
    assert code == 2
    assert ("policies/exceptions.yaml:8: exceptions.0.expires: the waiver of CVE-2099-0001 for spark-3.5 expired "
            "on 2020-01-31 (owner: data-platform@example.com)") in out


def test_a_waiver_that_still_counts_is_no_problem(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, "policies/exceptions.yaml", "exceptions: []", WAIVER.format(expires="2999-12-31"))
    code, out = run(project, capsys)
    assert code == 0 and "1 waivers" in out


def test_github_format_prints_one_annotation_per_problem(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(project, ETL, "base: spark-3.5", "base: spark-3.6")
    code, out = run(project, capsys, "--format", "github")
    assert code == 2
    assert out.splitlines()[0] == (
        f"::error file={ETL},line=5,title=moka-images check%3A base::`spark-3.6` is not an approved base "
        "(fix: did you mean `spark-3.5`? approved: spark-3.5, spark-4.0)")


def test_annotation_data_is_escaped(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "manifests/data-eng/a,b:c%d.txt").write_text("x")
    code, out = run(project, capsys, "--format", "github")
    assert code == 2 and out.splitlines()[0].startswith("::error file=manifests/data-eng/a%2Cb%3Ac%25d.txt,title=")


def test_a_missing_settings_file_is_a_problem_not_a_crash(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "moka.yaml").unlink()
    found = problems(project, capsys)
    assert ("moka.yaml", None, "", "cannot read: No such file or directory") in found


def test_the_use_case_returns_the_report_and_prints_nothing(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import date
    edit(project, ETL, "base: spark-3.5", "base: spark-9")
    report = check(project, date(2030, 1, 1))
    assert [p.field for p in report.problems] == ["base"] and report.checked["team images"] == 2
    assert capsys.readouterr() == ("", "")
