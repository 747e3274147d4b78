"""`moka-images check`: every setting, image, manifest, policy and waiver, checked without the stack (no network,
no docker, no registry), with every problem in every file reported at once: file, line, field and a fix.

`check` is the use case (it returns a report and prints nothing); `register` and `_run` are its command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from .config.manifests import read_declarations
from .config.policies import ExceptionFile, Policy, PolicyException, exceptions_path
from .config.settings import Settings, check_settings, find_root
from .config.validation import read, validate
from .errors import ConfigError, ManifestError, ValidationProblem
from .models import Environment
from .plan.graph import Link, graph_problems
from .trivydb.advisories import load_advisories

POLICIES_DIR = "policies"
ADVISORIES = "security/advisories.yaml"


@dataclass(frozen=True)
class CheckReport:
    """What `check` read, and every problem it found (sorted by file and line)."""

    problems: tuple[ValidationProblem, ...]
    checked: dict[str, int]  # how many valid declarations of each kind were read

    @property
    def files(self) -> list[str]:
        """The files with problems."""
        return sorted({p.file for p in self.problems})

    def to_json(self) -> dict[str, Any]:
        """The report as plain data (`--json`)."""
        return {"ok": not self.problems, "checked": self.checked,
                "problems": [{"file": p.file, "line": p.line, "field": p.field, "message": p.message, "fix": p.fix}
                             for p in self.problems]}


def check(root: Path, today: date) -> CheckReport:
    """Check the project at `root` as a whole, offline: moka.yaml (every profile), images/, every file under
    manifests/, the build graph (approved bases, cycles), the policies every environment uses, the waivers
    beside them (an expired one is a problem naming its owner) and the advisory list."""
    profiles, problems = check_settings(root)
    settled = not problems  # every profile read: a policy none of them uses is a problem
    reading = read_declarations(root)
    problems += reading.problems
    links = [Link(ref.image, ref.base, ref.source, ref.line) for ref in reading.base_refs]
    refused = {p.file for p in reading.problems if p.field == "base"}  # one problem per `base` is enough
    problems += [p for p in graph_problems(links, reading.base_names, [f"{f}-" for f in reading.unread_families])
                 if p.file not in refused]
    policies, waivers, bad = _check_policies(root, profiles, settled, today)
    problems += bad
    advisories = root / ADVISORIES
    if advisories.exists():
        try:
            load_advisories(advisories, ADVISORIES)
        except ManifestError as exc:
            problems += exc.problems
    checked = {"profiles": len(profiles), "base images": len(reading.declarations.bases),
               "team images": len(reading.declarations.teams), "policies": policies, "waivers": waivers}
    return CheckReport(tuple(sorted(problems, key=lambda p: (p.file, p.line or 0))), checked)


def _check_policies(root: Path, profiles: list[Settings], settled: bool,
                    today: date) -> tuple[int, int, list[ValidationProblem]]:
    """Each policy an environment of a profile uses (the defaults when moka.yaml cannot be read), any other YAML
    file in policies/ (a problem if `settled` and no environment uses it), and the waivers beside them.

    Returns how many policies and waivers were read, and the problems.
    """
    used: dict[Path, dict[str, list[str]]] = {}  # policy file -> environment -> profiles
    for s in profiles:
        for env in Environment:
            used.setdefault(s.policy_path(env), {}).setdefault(env.value, []).append(s.profile)
    if not profiles:
        used = {root / POLICIES_DIR / f"{env.value}.yaml": {env.value: []} for env in Environment}
    folder = root / POLICIES_DIR
    present = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".yaml", ".yml")) if folder.is_dir() else []
    problems: list[ValidationProblem] = []
    policies = waivers = 0
    for path in sorted({*used, *(p for p in present if p.name != exceptions_path(p).name)}):
        shown = _shown(root, path)
        if not path.exists():
            of = "; ".join(env + (f" (profile {', '.join(names)})" if names else "") for env, names in used[path].items())
            problems.append(ValidationProblem(shown, "", f"missing: it is the policy of {of}",
                                              "add it, or point the environment's `policy` in moka.yaml at another"))
            continue
        if path not in used and settled:
            problems.append(ValidationProblem(shown, "", "no environment uses this policy", "name it after its "
                                              "environment (test.yaml, dev.yaml, staging.yaml, prod.yaml) or set "
                                              "the environment's `policy` in moka.yaml"))
        policy, _, bad = read(Policy, path, shown)
        policies += policy is not None
        problems += bad
    for path in sorted({exceptions_path(p) for p in used} | {p for p in present if p.name == exceptions_path(p).name}):
        if path.exists():
            count, bad = _check_waivers(path, _shown(root, path), today)
            waivers += count
            problems += bad
    return policies, waivers, problems


def _check_waivers(path: Path, shown: str, today: date) -> tuple[int, list[ValidationProblem]]:
    """The waivers of one exceptions file; an expired one is a problem naming its owner, even when others in the
    file have problems of their own."""
    _, doc, problems = read(ExceptionFile, path, shown)
    items = doc.data.get("exceptions") if doc is not None and isinstance(doc.data, dict) else None
    waivers = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        waiver, bad = validate(PolicyException, item, shown, doc=doc, at=("exceptions", str(i)))
        if waiver is not None and not bad:
            waivers.append((i, waiver))
    for i, waiver in waivers:
        if waiver.expired(today) and doc is not None:
            problems.append(ValidationProblem(
                shown, f"exceptions.{i}.expires", f"the waiver of {waiver.id} for {waiver.image} expired on "
                f"{waiver.expires} (owner: {waiver.owner})", f"{waiver.owner} renews it with a new `expires` and "
                "reason, or removes it once the finding is fixed", doc.line(("exceptions", str(i), "expires"))))
    return len(waivers), problems


def _shown(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


# ---- command line --------------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add `check`."""
    parser = sub.add_parser(
        "check", help="check every manifest, image, policy and setting without the stack",
        description="Check every manifest, image, policy and setting without the stack: no registry, no docker, "
                    "no network. Every problem in every file is listed at once, with the file, the line, the field "
                    "and how to fix it. Exit code 2 when there is any problem.")
    parser.add_argument("--root", type=Path, metavar="DIR",
                        help="the project to check (default: MOKA_ROOT, or the nearest folder holding moka.yaml)")
    parser.add_argument("--format", choices=["text", "github", "json"], default="text",
                        help="text for people (default), github for workflow annotations, json for programs")
    parser.add_argument("--json", dest="format", action="store_const", const="json", help="same as --format json")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    report = check((args.root or find_root()).resolve(), datetime.now(UTC).date())
    if args.format == "json":
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        lines = [_annotation(p) for p in report.problems] if args.format == "github" else _text(report.problems)
        sys.stdout.write("".join(f"{line}\n" for line in [*lines, _summary(report)]))
    return ConfigError.exit_code if report.problems else 0


def _text(problems: Iterable[ValidationProblem]) -> list[str]:
    out = []
    for p in problems:
        where = f"{p.file}:{p.line}" if p.line else p.file
        out.append(f"{where}: {p.field + ': ' if p.field else ''}{p.message}" + (f"\n    fix: {p.fix}" if p.fix else ""))
    return out


def _summary(report: CheckReport) -> str:
    checked = ", ".join(f"{n} {kind}" for kind, n in report.checked.items())
    if not report.problems:
        return f"no problems; valid: {checked}"
    return f"{len(report.problems)} problem(s) in {len(report.files)} file(s); valid: {checked}"


def _annotation(p: ValidationProblem) -> str:
    """A GitHub workflow command: the problem shows on the file and line in the pull request."""
    where = f"file={_escape(p.file, True)}" + (f",line={p.line}" if p.line else "")
    title = _escape(f"moka-images check: {p.field}" if p.field else "moka-images check", True)
    message = p.message + (f" (fix: {p.fix})" if p.fix else "")
    return f"::error {where},title={title}::{_escape(message, False)}"


def _escape(text: str, in_property: bool) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if in_property else text
