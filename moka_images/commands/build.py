"""`moka-images build`: build what the plan says into the test registry, one platform or all."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from rich.table import Table

from moka_images import log
from moka_images.commands.views import add_selection, show_plan
from moka_images.config.settings import load_settings
from moka_images.errors import ConfigError
from moka_images.models import Platform
from moka_images.stages.build import BuiltImage, build, build_platform, merge


def results_table(results: Sequence[BuiltImage]) -> Table:
    """Image, version, index digest and per-arch digests."""
    table = Table(title="images in test", title_justify="left")
    for column in ("image", "version", "action", "index digest", "per-arch digests"):
        table.add_column(column, overflow="fold")
    for r in results:
        arches = "\n".join(f"{p.arch}: {d.short}" for p, d in sorted(r.platforms.items()))
        table.add_row(r.image, r.version, r.action.value, r.digest.value[:19] + "…", arches)
    return table


def register(sub: argparse._SubParsersAction) -> None:
    """Add `build`."""
    parser = sub.add_parser("build", help="build what the plan says into the test registry")
    add_selection(parser)
    parser.add_argument("--jobs", type=int, default=2, help="images built at once (default 2)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--platform", type=_platform_arg, metavar="OS/ARCH",
                       help="build only this platform, pushed under per-arch tags (one CI runner per platform)")
    split.add_argument("--merge", action="store_true",
                       help="make each image's index from its per-arch builds (after --platform for every platform)")
    parser.set_defaults(func=_run)


def _platform_arg(text: str) -> Platform:
    try:
        return Platform.parse(text)
    except ConfigError as exc:  # argparse reports only its own error types as usage errors
        raise argparse.ArgumentTypeError(f"{exc.message} ({exc.hint})") from None


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(profile=args.profile)
    if args.platform:
        arch, waiting = build_platform(settings, args.platform, images=args.images, since_rev=args.since,
                                       jobs=args.jobs, on_plan=show_plan)
        doc: object = {"platform": str(args.platform), "images": [a.to_json() for a in arch], "waiting": waiting}
        table = Table("image", "version", "action", "per-arch tag", "digest", title=f"{args.platform} in test",
                      title_justify="left")
        for a in arch:
            table.add_row(a.image, a.version, a.action.value, a.tag, a.digest.short)
    elif args.merge:
        results, waiting = merge(settings, images=args.images, since_rev=args.since, on_plan=show_plan)
        doc, table = {"images": [r.to_json() for r in results], "waiting": waiting}, results_table(results)
    else:
        results, waiting = build(settings, images=args.images, since_rev=args.since, jobs=args.jobs,
                                 on_plan=show_plan), []
        doc, table = [r.to_json() for r in results], results_table(results)
    if waiting:
        log.info(f"waiting for their base's index (merge, then build again): {', '.join(waiting)}")
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        log.console().print(table)
    return 0
