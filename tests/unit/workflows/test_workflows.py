"""The GitHub workflows: they parse, they call only commands and flags the CLI has (with the values they pass,
matrix expanded), the merge build runs each platform natively, and releases go through approval."""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from moka_images import cli

ROOT = Path(__file__).resolve().parents[3]
WORKFLOWS = ROOT / ".github" / "workflows"
RUNNERS = {"linux/amd64": "ubuntu-24.04", "linux/arm64": "ubuntu-24.04-arm"}
_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_INVOCATION = re.compile(r"(?:^|[\s;&|(`])moka-images(?=\s)(.*)")
PLACEHOLDER = "x"  # what a shell variable or an expression the test cannot know stands for


@dataclass(frozen=True)
class Command:
    """One `moka-images ...` call in a workflow, with the matrix values it was expanded with."""

    workflow: str
    job: str
    argv: tuple[str, ...]
    where: str

    @property
    def name(self) -> str:
        """The subcommand, e.g. `db mirror`."""
        return cli._command_name(parse(self.argv))


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(doc, dict), name
    if True in doc:  # YAML 1.1 reads the key `on` as a boolean
        doc["on"] = doc.pop(True)
    return doc


def _matrix_rows(job: dict[str, Any]) -> list[dict[str, str]]:
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    rows = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())] if axes else []
    return rows + list(matrix.get("include") or []) or [{}]


def _expand(text: str, row: dict[str, str]) -> str:
    def value(m: re.Match[str]) -> str:
        expr = m.group(1)
        if expr.startswith("matrix."):
            return str(row[expr.removeprefix("matrix.")])
        return str(row.get(expr, PLACEHOLDER))  # a choice input, expanded like a matrix axis
    return _EXPR.sub(value, text)


def extract(script: str) -> Iterator[list[str]]:
    """The argv after `moka-images` of each call in a shell script, up to the first shell operator."""
    joined = script.replace("\\\n", " ")
    for line in joined.splitlines():
        for m in _INVOCATION.finditer(line):
            lexer = shlex.shlex(m.group(1), posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            argv = []
            for token in lexer:
                if token and all(c in "();<>|&" for c in token):
                    break
                argv.append(re.sub(r"\$\{?\w+\}?", PLACEHOLDER, token))
            yield argv


def _input_rows(doc: dict[str, Any]) -> list[dict[str, str]]:
    """One row per combination of the workflow's choice inputs (`inputs.target`: each option)."""
    inputs = ((doc.get("on") or {}).get("workflow_dispatch") or {}).get("inputs") or {}
    axes = {f"inputs.{k}": v["options"] for k, v in inputs.items() if v.get("type") == "choice"}
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def commands(name: str) -> list[Command]:
    out = []
    doc = load(name)
    for job_name, job in doc["jobs"].items():
        for row in ({**m, **i} for m in _matrix_rows(job) for i in _input_rows(doc)):
            for i, step in enumerate(job.get("steps") or []):
                if "run" in step:
                    for argv in extract(_expand(step["run"], row)):
                        out.append(Command(name, job_name, tuple(argv), f"{name}: {job_name} step {i} {row}"))
    return out


def _exact(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """No abbreviated flags: a workflow's `--merge` must not pass as a prefix of a renamed `--merge-all`."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _exact(sub)
    return parser


def parse(argv: tuple[str, ...]) -> argparse.Namespace:
    """Parse like the CLI does; a SystemExit (unknown command or flag, bad value) becomes a readable failure."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return _exact(cli.build_parser()).parse_args(list(argv))
    except SystemExit:
        raise AssertionError(f"`moka-images {' '.join(argv)}` does not parse: {err.getvalue().strip()}") from None


ALL = sorted(p.name for p in WORKFLOWS.glob("*.yml"))


def test_the_three_workflows_exist_and_parse() -> None:
    assert ALL == ["merge.yml", "nightly.yml", "release.yml"]
    for name in ALL:
        doc = load(name)
        assert doc["name"] and doc["on"] and doc["jobs"]
        for job in doc["jobs"].values():
            assert job.get("runs-on") and job.get("steps")


@pytest.mark.parametrize("name", ALL)
def test_every_command_exists_with_every_flag(name: str) -> None:
    found = commands(name)
    assert found, f"{name} calls no moka-images command"
    for command in found:
        args = parse(command.argv)
        assert callable(args.func), command.where


def test_a_renamed_command_or_flag_is_caught() -> None:
    script = 'moka-images plan --since "$SINCE" --json > plan.json\nmoka-images plam --json | tee x\n' \
             "echo ok && moka-images build --platfrom linux/arm64"
    calls = list(extract(script))
    assert calls == [["plan", "--since", PLACEHOLDER, "--json"], ["plam", "--json"], ["build", "--platfrom",
                                                                                      "linux/arm64"]]
    parse(tuple(calls[0]))
    for bad in calls[1:]:
        with pytest.raises(AssertionError, match="does not parse"):
            parse(tuple(bad))
    with pytest.raises(AssertionError, match="does not parse"):
        parse(("build", "--platform", "linux/riscv64"))  # values are checked too
    with pytest.raises(AssertionError, match="does not parse"):
        parse(("build", "--merg"))  # and flags are whole


def test_merge_plans_builds_each_platform_natively_merges_verifies_and_promotes_to_dev() -> None:
    doc = load("merge.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    assert "github.event.before" in doc["env"]["SINCE"]
    found = commands("merge.yml")
    assert {c.name for c in found} == {"check", "plan", "build", "pipeline", "promote", "report"}
    check = next(c for c in found if c.name == "check")
    assert next(iter(doc["jobs"])) == check.job and doc["jobs"]["plan"]["needs"] == check.job  # before anything
    assert parse(check.argv).format == "github"
    per_arch = [c for c in found if "--platform" in c.argv]
    assert per_arch and all("--since" in c.argv for c in found if c.name in ("plan", "build", "pipeline"))
    for job_name in {c.job for c in per_arch}:
        job = doc["jobs"][job_name]
        rows = _matrix_rows(job)
        platforms = {c.argv[c.argv.index("--platform") + 1] for c in per_arch if c.job == job_name}
        assert platforms == set(RUNNERS), job_name
        for row in rows:  # each platform on its own native runner
            assert RUNNERS[row["platform"]] == _expand(job["runs-on"], row), (job_name, row)
    merges = [c for c in found if "--merge" in c.argv]
    assert len(merges) == len({c.job for c in per_arch})  # every round of per-arch builds is merged
    order = list(doc["jobs"])
    for merge in merges:  # ... after the per-arch builds it merges
        needs = doc["jobs"][merge.job]["needs"]
        assert any(order.index(n) < order.index(merge.job) for n in ([needs] if isinstance(needs, str) else needs))
    promote = next(c for c in found if c.name == "promote")
    args = parse(promote.argv)
    assert args.to == "dev" and args.confirm and str(args.release) == "release.json"
    pipeline = next(c for c in found if c.name == "pipeline")
    assert parse(pipeline.argv).promote_to == "none" and str(parse(pipeline.argv).release_out) == "release.json"
    needs = doc["jobs"][promote.job]["needs"]
    assert pipeline.job in ([needs] if isinstance(needs, str) else needs)  # dev gets the verified release


def test_jobs_that_diff_against_a_revision_fetch_the_history() -> None:
    for name in ALL:
        for job_name, job in load(name)["jobs"].items():
            if any("--since" in c.argv for c in commands(name) if c.job == job_name):
                checkout = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout"))
                assert (checkout.get("with") or {}).get("fetch-depth") == 0, (name, job_name)


def test_release_plans_outside_and_applies_that_plan_inside_protected_environments() -> None:
    doc = load("release.yml")
    inputs = doc["on"]["workflow_dispatch"]["inputs"]
    assert set(inputs) >= {"release_run", "target"}
    assert inputs["target"]["type"] == "choice" and set(inputs["target"]["options"]) == {"staging", "prod"}
    promotions = [c for c in commands("release.yml") if c.name == "promote"]
    planning = [c for c in promotions if parse(c.argv).plan_out]
    applying = [c for c in promotions if parse(c.argv).apply]
    assert len(planning) + len(applying) == len(promotions)
    assert {parse(c.argv).to for c in planning} == {"staging", "prod"}  # one plan job, for either target
    (plan,) = {c.job: c for c in planning}.values()
    assert "environment" not in doc["jobs"][plan.job] and not parse(plan.argv).confirm  # planning moves nothing
    assert parse(plan.argv).release is not None
    plan_artifact = next(s["with"]["name"] for s in doc["jobs"][plan.job]["steps"]
                         if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    for c in applying:
        args = parse(c.argv)
        job = doc["jobs"][c.job]
        target = {"staging": "staging", "production": "prod"}[job["environment"]]
        assert f"inputs.target == '{target}'" in job["if"], c.where
        assert args.confirm and args.approved_by, f"{c.where}: an applied plan names its approver"
        assert args.to is None and args.image is None and args.release is None  # only the plan, nothing else
        needs = job["needs"]
        assert plan.job in ([needs] if isinstance(needs, str) else needs), c.where
        downloads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/download-artifact")]
        assert [d["with"]["name"] for d in downloads] == [plan_artifact], c.where  # the plan an earlier job made
    assert {c.job: doc["jobs"][c.job]["environment"] for c in applying} == {"staging": "staging",
                                                                             "prod": "production"}


@pytest.mark.parametrize("name", ["merge.yml", "release.yml", "nightly.yml"])
def test_every_promotion_names_a_digest_a_release_or_a_plan_never_a_bare_name(name: str) -> None:
    for c in commands(name):
        if c.name != "promote":
            continue
        args = parse(c.argv)
        assert args.release or args.apply or (args.image and "@sha256:" in args.image), \
            f"{c.where}: `moka-images {' '.join(c.argv)}` resolves a name at promotion time"


def test_every_shipped_profile_requires_approval_for_prod() -> None:
    settings = yaml.safe_load((ROOT / "moka.yaml").read_text())
    for name, profile in settings["profiles"].items():
        assert profile["environments"]["prod"].get("approval_required") is True, name


def test_nightly_mirrors_a_fresh_db_then_rescans_every_environment() -> None:
    doc = load("nightly.yml")
    assert doc["on"]["schedule"][0]["cron"]
    found = commands("nightly.yml")
    mirror = [c for c in found if c.name == "db mirror"]
    rescans = [c for c in found if c.name == "rescan"]
    assert mirror and rescans
    assert {parse(c.argv).env for c in rescans} == {"test", "dev", "staging", "prod"}
    for c in rescans:
        needs = doc["jobs"][c.job]["needs"]
        assert mirror[0].job in ([needs] if isinstance(needs, str) else needs)
    assert "report" in {c.name for c in found}


def test_team_repositories_can_run_check_as_a_pre_commit_hook() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = hooks
    assert hook["id"] == "moka-images-check" and hook["language"] == "python" and hook["pass_filenames"] is False
    (argv,) = list(extract(hook["entry"]))
    assert cli._command_name(parse(tuple(argv))) == "check"
    for changed in ("moka.yaml", "images/spark/image.yaml", "manifests/data-eng/etl-jobs.yaml",
                    "manifests/data-eng/etl/config.yaml", "policies/prod.yaml", "security/advisories.yaml"):
        assert re.search(hook["files"], changed), changed
    assert not re.search(hook["files"], "README.md")
