"""`moka-images dev up | down | env`: the local stack."""

from __future__ import annotations

import argparse

from moka_images import log
from moka_images.config.settings import load_settings
from moka_images.devstack.stack import down, env_lines, up


def register(sub: argparse._SubParsersAction) -> None:
    """Add `dev up|down|env`."""
    dev = sub.add_parser("dev", help="the local stack: docker engine, registries, moto, mirror")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    dev_sub.add_parser("up", help="start what is missing (idempotent)").set_defaults(func=_cmd_up)
    dev_sub.add_parser("down", help="stop what `dev up` started").set_defaults(func=_cmd_down)
    dev_sub.add_parser("env", help="print registry endpoints and credentials as shell variables").set_defaults(
        func=_cmd_env)


def _cmd_up(args: argparse.Namespace) -> int:
    up(load_settings(profile=args.profile))
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    stopped = down(load_settings(profile=args.profile))
    log.info("stopped: " + (", ".join(stopped) or "nothing (no daemon of ours was running)"))
    return 0


def _cmd_env(args: argparse.Namespace) -> int:
    for line in env_lines(load_settings(profile=args.profile)):
        print(line)
    return 0
