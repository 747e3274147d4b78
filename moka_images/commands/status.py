"""`moka-images status`: every image in every environment, and what each holds."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from moka_images.config.settings import load_settings
from moka_images.models import Environment
from moka_images.stages.status import Row, collect


def table(rows: Sequence[Row]) -> Table:
    """Image x environment, with notes in yellow."""
    out = Table(title="images by environment", title_justify="left", show_lines=True)
    out.add_column("image", no_wrap=True)
    for env in Environment:
        out.add_column(env.value, overflow="fold")
    out.add_column("attention", overflow="fold", style="yellow")
    for row in rows:
        cells = []
        for c in row.cells:
            if c.digest is None:
                cells.append("[dim]-[/]")
                continue
            signed = "[green]signed[/]" if c.signed else "[red]NOT signed[/]"
            lines = [f"[bold]{c.version or '?'}[/] {c.digest.short}", signed, f"scan: {c.scan or '-'}",
                     f"smoke: {c.smoke or '-'}"]
            if c.promoted.get("approved_by"):
                lines.append(f"approved by {c.promoted['approved_by']}")
            cells.append("\n".join(lines))
        out.add_row(f"{row.image}\n[dim]declared {row.declared or '-'}[/]", *cells, "\n".join(row.notes))
    return out


def register(sub: argparse._SubParsersAction) -> None:
    """Add `status`."""
    p = sub.add_parser("status", help="what each environment holds, and what is pending or drifted")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="only these images (default: every declared one)")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    rows = collect(load_settings(profile=args.profile), args.images)
    if args.json:
        sys.stdout.write(json.dumps([r.to_json() for r in rows], indent=2) + "\n")
    else:
        Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table(rows))
    return 0
