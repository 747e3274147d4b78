"""`moka-images db mirror`: the vulnerability databases in the mirror."""

from __future__ import annotations

import argparse
from pathlib import Path

from moka_images import log
from moka_images.config.settings import load_settings
from moka_images.stages import registries
from moka_images.stages.verify.dbmirror import ADVISORIES, mirror_databases
from moka_images.trivydb import builder


def _cmd_db_mirror(args: argparse.Namespace) -> int:
    settings = load_settings(profile=args.profile)
    with log.step(f"push trivy DBs to {settings.mirror}"):
        vuln, java = mirror_databases(settings, registries.mirror(settings), advisories=args.advisories,
                                      vuln_archive=args.vuln_archive, java_archive=args.java_archive)
    log.info(f"{settings.mirror}/{settings.trivy.db_repository}:{builder.VULN_DB_SCHEMA} = {vuln}")
    log.info(f"{settings.mirror}/{settings.trivy.java_db_repository}:{builder.JAVA_DB_SCHEMA} = {java}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `db mirror`."""
    db = sub.add_parser("db", help="trivy's vulnerability databases in the mirror")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    m = db_sub.add_parser("mirror", help="build (or take) the DBs and push them to the mirror registry")
    m.add_argument("--advisories", type=Path, help=f"advisory list to build from (default {ADVISORIES})")
    m.add_argument("--vuln-archive", type=Path, help="push this upstream db.tar.gz instead of building")
    m.add_argument("--java-archive", type=Path, help="push this upstream javadb.tar.gz instead of building")
    m.set_defaults(func=_cmd_db_mirror)

