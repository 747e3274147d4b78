"""`moka-images plan`: what a build would do with each image, and why."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from moka_images.commands.views import add_selection, plan_table
from moka_images.config.settings import load_settings
from moka_images.errors import PlanRefused
from moka_images.plan.graph import Action
from moka_images.stages.planning import compute_plan


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(profile=args.profile)
    plan = compute_plan(settings, since_rev=args.since, images=args.images)
    if args.json:
        sys.stdout.write(json.dumps(plan.to_json(), indent=2) + "\n")
    else:
        # Piped output (CI logs) gets a wide table, so that reasons stay on one line and can be grepped.
        Console(highlight=False, width=None if sys.stdout.isatty() else 250).print(plan_table(plan))
    refused = plan.by_action(Action.REFUSE)
    if refused:
        raise PlanRefused(f"{len(refused)} image(s) refused: {', '.join(d.image for d in refused)}",
                          "each refusal's reason says what to change")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `plan`."""
    parser = sub.add_parser("plan", help="show what a build would do with each image, and why")
    add_selection(parser)
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(func=_run)

