"""`moka-images pipeline`: the job on merge, from plan to dev."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.table import Table

from moka_images import log
from moka_images.commands.views import add_selection, show_plan, show_suite
from moka_images.config.settings import load_settings
from moka_images.errors import GateFailed
from moka_images.models import Environment
from moka_images.stages.pipeline import ImageOutcome, release_of, run_pipeline


def summary(outcomes: list[ImageOutcome]) -> Table:
    """One row per image: each phase's result and time."""
    table = Table(title="pipeline", title_justify="left")
    for column in ("image", "digest", "scan", "sign", "smoke", "promote"):
        table.add_column(column, overflow="fold")
    for o in outcomes:
        cells = [f"{o.phases.get(p, '-')} ({o.seconds[p]}s)" if p in o.seconds else "-" for p in
                 ("scan", "sign", "smoke", "promote")]
        table.add_row(o.image, o.digest[:19] + "…", *cells)
    return table


def register(sub: argparse._SubParsersAction) -> None:
    """Add `pipeline`."""
    parser = sub.add_parser("pipeline", help="the job on merge: plan, build, scan, sign, smoke, promote")
    add_selection(parser)
    parser.add_argument("--jobs", type=int, default=2, help="images built at once (default 2)")
    parser.add_argument("--promote-to", default="dev", metavar="ENV",
                        help="where images that pass go (default dev; `none` to stop in test)")
    parser.add_argument("--json", action="store_true",
                        help="print the release (every image that passed, by digest) and each phase as JSON")
    parser.add_argument("--release-out", type=Path, metavar="FILE",
                        help="write the release file: what `promote --release` moves on, digest for digest")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    target = None if args.promote_to == "none" else Environment.parse(args.promote_to)
    outcomes = run_pipeline(load_settings(profile=args.profile), since_rev=args.since, images=tuple(args.images),
                            jobs=args.jobs, promote_to=target, on_plan=show_plan,
                            on_suite=show_suite)
    release = release_of(outcomes)
    if args.release_out and release is not None:
        args.release_out.write_text(json.dumps(release.to_json(), indent=2) + "\n")
        log.info(f"release written to {args.release_out}: promote it with `moka-images promote --release "
                 f"{args.release_out} --to ENV`")
    if args.json:
        doc = {**(release.to_json() if release else {"images": []}), "outcomes": [o.to_json() for o in outcomes]}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        log.console().print(summary(outcomes))
    failed = [o for o in outcomes if o.failed]
    if failed:
        raise GateFailed("\n".join(f"{o.image}: {o.failed}" for o in failed), "nothing failed was promoted")
    return 0
