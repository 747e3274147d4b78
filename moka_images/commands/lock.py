"""`moka-images lock`: resolve the JVM packages a declaration names and pin them, by checksum, in its lock."""

from __future__ import annotations

import argparse
import json
import sys

from moka_images.config.settings import load_settings
from moka_images.stages.locking import LockResult, lock


def register(sub: argparse._SubParsersAction) -> None:
    """Add `lock`."""
    parser = sub.add_parser(
        "lock", help="resolve the JVM packages your manifest declares and pin them by checksum",
        description="Resolve the JVM packages your manifest's `jvm` section declares (and every JAR they need) "
                    "with Maven, on this machine, and pin each JAR by its sha256 in the lock beside the manifest "
                    "(<name>.jvm.lock). JARs the base image already ships are left out: Spark's own win. Image "
                    "builds fetch exactly what the lock names and never resolve anything. Without IMAGE, every "
                    "missing or out-of-date lock is written; a named image is resolved again. Commit the lock with "
                    "the manifest, and bump `version`. Needs Maven (mvn), a JDK and Maven Central.")
    parser.add_argument("images", nargs="*", metavar="IMAGE",
                        help="only these images, e.g. data-eng/etl-jobs (default: every lock `check` finds missing "
                             "or out of date)")
    parser.add_argument("--json", action="store_true", help="print the locks as JSON on stdout")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    results = lock(load_settings(profile=args.profile), args.images)
    if args.json:
        sys.stdout.write(json.dumps([r.to_json() for r in results], indent=2) + "\n")
    elif not results:
        sys.stdout.write("no image declares `jvm` packages: nothing to lock\n")
    else:
        sys.stdout.write("".join(_text(r) for r in results))
    return 0


def _text(result: LockResult) -> str:
    """One image's lock for people: what it adds, and what it leaves to the base (one coordinate a line)."""
    lines = [f"{result.image}: {result.path} {result.action}", f"  adds {len(result.jars)} JAR(s):",
             *(f"    {c}" for c in result.jars)]
    if result.provided_by_base:
        lines += [f"  left to the base, which ships them ({len(result.provided_by_base)}):",
                  *(f"    {c}" for c in result.provided_by_base)]
    return "\n".join(lines) + "\n"
