"""The `moka-images` command: subcommands from the stage modules; MokaError becomes a message and exit code."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import log
from .errors import MokaError

# Each module exposes register(subparsers): it adds its subcommands and sets `func(args) -> int`.
COMMAND_MODULES = [
    "moka_images.stack",
    "moka_images.doctor",
    "moka_images.scan",
    "moka_images.planning",
    "moka_images.build",
    "moka_images.signing",
]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used by the workflow tests to know which commands exist)."""
    parser = argparse.ArgumentParser(prog="moka-images", description=__doc__)
    parser.add_argument("--profile", help="settings profile from moka.yaml (default: MOKA_PROFILE or default_profile)")
    parser.add_argument("--log-format", choices=["text", "json"], default=None, help="log lines as text or JSON")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, dispatch, and turn errors into a message, a hint and an exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log_format:
        log.set_format(args.log_format)
    try:
        return int(args.func(args) or 0)
    except MokaError as exc:
        log.error(exc.message)
        if exc.hint:
            log.info(f"hint: {exc.hint}")
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted; a rerun picks up where this stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
