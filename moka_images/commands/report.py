"""`moka-images report`: one self-contained HTML page of what the environments hold and how images evolve."""

from __future__ import annotations

import argparse
from pathlib import Path

from moka_images import log
from moka_images.commands.report_page import render
from moka_images.config.settings import load_settings
from moka_images.stages.report import collect


def register(sub: argparse._SubParsersAction) -> None:
    """Add `report`."""
    p = sub.add_parser("report", help="one self-contained HTML page: status matrix, sizes and findings over time")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="only these images (default: every declared one)")
    p.add_argument("--output", "-o", type=Path, default=Path("moka-images-report.html"), metavar="FILE",
                   help="where to write the page (default moka-images-report.html)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    data = collect(load_settings(profile=args.profile), args.images)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(data))
    log.info(f"wrote {args.output}", images=len(data.rows), promotions=len(data.promotions))
    return 0
