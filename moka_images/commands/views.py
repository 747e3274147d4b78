"""Renderings that several commands show: the build plan and a smoke suite's result."""

from __future__ import annotations

import argparse

from rich.table import Table

from moka_images import log
from moka_images.plan.graph import Action, Plan
from moka_images.smoke.report import timing_table
from moka_images.smoke.results import SuiteResult


def plan_table(plan: Plan) -> Table:
    """The plan as a table for people."""
    table = Table(title=f"build plan (OS base {plan.os_base.short})", title_justify="left")
    for column in ("image", "action", "version", "tag"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", overflow="fold", min_width=30)
    style = {Action.BUILD: "bold cyan", Action.SKIP: "dim", Action.REFUSE: "bold red"}
    for d in plan.decisions:
        tag = d.tag or ("(after its base)" if d.pending else "")
        table.add_row(d.image, f"[{style[d.action]}]{d.action.value.upper()}[/]", d.version, tag, d.reason)
    return table


def show_plan(plan: Plan) -> None:
    """Print the plan where the log goes, before a build acts on it."""
    log.console().print(plan_table(plan))


def show_suite(result: SuiteResult) -> None:
    """Time per job and platform, then every failure with its driver log tail."""
    header, rows = timing_table(result)
    table = Table(*header, title=f"smoke {result.image}")
    for row in rows:
        table.add_row(*row)
    console = log.console()
    console.print(table)
    for run in result.runs:
        console.print(f"{run.platform} {run.digest}: {'passed' if run.passed else 'FAILED'} in {run.seconds:.1f}s")
        for job in run.jobs:
            if not job.passed and job.log_tail:
                console.print(f"[red]{job.describe()}[/]\n[dim]{job.log_tail}[/]", markup=True, highlight=False)
    for mismatch in result.mismatches:
        console.print(f"[red]mismatch: {mismatch.describe()}[/]")


def add_selection(parser: argparse.ArgumentParser) -> None:
    """IMAGE... and --since REV: which images a plan, build or pipeline works on."""
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="only these images (and the bases they need)")
    parser.add_argument("--since", metavar="REV", help="only images whose inputs changed since this git revision")
