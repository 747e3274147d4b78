"""`moka-images check`: every manifest, image, policy and setting, offline, every problem at once."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from moka_images.config.settings import find_root
from moka_images.errors import ConfigError, ValidationProblem
from moka_images.stages.checking import CheckReport, check


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
