"""`moka-images doctor`: every tool and service with its version, and how to fix what is missing."""

from __future__ import annotations

import argparse

from rich.table import Table

from moka_images import log
from moka_images.config.settings import load_settings
from moka_images.devstack.doctor import check_blob_mounting, check_services, check_tools


def register(sub: argparse._SubParsersAction) -> None:
    """Add `doctor`."""
    sub.add_parser("doctor", help="check every tool and service").set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    settings = load_settings(profile=args.profile)
    checks = check_tools() + (check_services(settings) if settings.local_stack else []) + check_blob_mounting(settings)
    table = Table("check", "ok", "detail", "fix")
    for c in checks:
        table.add_row(c.name, "[green]yes[/]" if c.ok else "[red]no[/]", c.detail, "" if c.ok else c.fix)
    log.console().print(table)
    return 0 if all(c.ok for c in checks) else 3
