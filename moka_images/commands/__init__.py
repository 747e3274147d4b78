"""The commands: each module parses its arguments, calls a use case, renders its value and picks the exit code.

Listed in the order of an image's life, which is the order `moka-images --help` shows them in. A run imports
only the module of the command it runs (each pulls in its stage, some of them heavy), so `moka-images status`
does not pay for the build's container tooling; `--help` and a missing command import them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module
from types import ModuleType

# Each module has register(subparsers), which adds the top-level commands named here and sets
# `func(args) -> int` on them.
IN_LIFECYCLE_ORDER: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("check", ("check",)), ("lock", ("lock",)), ("plan", ("plan",)), ("build", ("build",)), ("scan", ("scan",)),
    ("sign", ("sign", "attest", "verify")), ("smoke", ("smoke",)), ("promote", ("promote", "rollback")),
    ("status", ("status",)), ("report", ("report",)), ("pipeline", ("pipeline",)), ("rescan", ("rescan",)),
    ("db", ("db",)), ("dev", ("dev",)), ("doctor", ("doctor",)),
)


def modules(command: str | None = None) -> list[ModuleType]:
    """The command modules to register: the one that has `command`, or every one (in lifecycle order)."""
    chosen = [name for name, words in IN_LIFECYCLE_ORDER if command in words] or [
        name for name, _ in IN_LIFECYCLE_ORDER]
    return [import_module(f"{__name__}.{name}") for name in chosen]


def command_word(argv: Sequence[str], options_with_values: Sequence[str]) -> str | None:
    """The command a command line names: its first word that is neither an option nor an option's value."""
    words = iter(argv)
    for word in words:
        if word in options_with_values:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None
