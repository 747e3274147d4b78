"""`moka-images rescan`: scan what an environment serves with the current databases (nightly)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from moka_images.config.settings import load_settings
from moka_images.errors import GateFailed
from moka_images.models import Environment
from moka_images.stages.rescan import Rescan, rescan


def table(environment: Environment, results: Sequence[Rescan]) -> Table:
    """One row per digest served: tags, counts, verdict and what is new."""
    out = Table(title=f"rescan of {environment}", title_justify="left")
    for column in ("image", "tags", "digest", "crit", "high", "med", "low", "verdict", "new since the last scan"):
        out.add_column(column, overflow="fold")
    for r in results:
        c = r.counts()
        verdict = "[green]allowed[/]" if r.verdict.allowed else f"[red]BLOCKED[/] ({len(r.verdict.blocking)})"
        new = "(first scan)" if r.new is None else escape(", ".join(r.new)) or "-"
        out.add_row(escape(r.image), escape(" ".join(r.tags)), r.ref.digest.short if r.ref.digest else "",
                    *(str(c.get(k, 0)) for k in ("CRITICAL", "HIGH", "MEDIUM", "LOW")), verdict, new)
    return out


def register(sub: argparse._SubParsersAction) -> None:
    """Add `rescan`."""
    p = sub.add_parser("rescan", help="scan again what an environment serves, with the mirror's current DB")
    p.add_argument("--env", required=True, choices=[e.value for e in Environment],
                   help="environment whose images are rescanned and whose policy judges them")
    p.add_argument("--json", action="store_true", help="print one object per digest as JSON on stdout")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    environment = Environment.parse(args.env)
    results = rescan(load_settings(profile=args.profile), environment)
    if args.json:
        sys.stdout.write(json.dumps([r.to_json() for r in results], indent=2) + "\n")
    else:
        Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table(environment, results))
    blocked = [r for r in results if r.blocked]
    if blocked:
        raise GateFailed(f"{len(blocked)} image(s) served in {environment} are now blocked by its policy: "
                         + ", ".join(f"{r.image}@{r.ref.digest.short if r.ref.digest else ''}" for r in blocked),
                         "fix and promote a new build, or add an exception with an owner and expiry")
    return 0
