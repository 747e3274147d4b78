"""The commands: each module parses its arguments, calls a use case, renders its value and picks the exit code.

Listed in the order of an image's life, which is the order `moka-images --help` shows them in.
"""

from __future__ import annotations

from types import ModuleType

from moka_images.commands import (
    build,
    check,
    db,
    dev,
    doctor,
    pipeline,
    plan,
    promote,
    report,
    rescan,
    scan,
    sign,
    smoke,
    status,
)

# Each module has register(subparsers), which adds its subcommands and sets `func(args) -> int`.
IN_LIFECYCLE_ORDER: tuple[ModuleType, ...] = (
    check, plan, build, scan, sign, smoke, promote, status, report, pipeline, rescan, db, dev, doctor,
)
