"""`moka-images smoke`: the Spark smoke suite on every platform of an image."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from moka_images.commands.views import show_suite
from moka_images.config.settings import load_settings
from moka_images.errors import ConfigError, GateFailed
from moka_images.models import Environment, ImageRef, Platform
from moka_images.smoke.report import junit_xml, predicate
from moka_images.stages.images import parse_spec, resolve
from moka_images.stages.verify import attestations
from moka_images.stages.verify.smoke import builtin_jobs, jobs_for, smoke


def register(sub: argparse._SubParsersAction) -> None:
    """Add `smoke`."""
    p = sub.add_parser("smoke", help="run Spark smoke jobs in each platform of an image, compare the answers")
    p.add_argument("image", nargs="?", metavar="IMAGE[:VERSION]", help="image name (latest version if none)")
    p.add_argument("--env", required=True, choices=[e.value for e in Environment],
                   help="environment whose registry holds the image")
    p.add_argument("--ref", help="a plain reference instead of IMAGE: REGISTRY/REPOSITORY@sha256:...")
    p.add_argument("--platform", action="append", type=Platform.parse, metavar="P",
                   help="only this platform (repeatable), default every platform of the index")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML here")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the result (the attestation predicate) here")
    p.add_argument("--parallel", type=int, default=1, metavar="N", help="platforms run at once (default 1)")
    p.add_argument("--attest", action="store_true",
                   help="attach the result to the index digest as a cosign attestation (the env's key)")
    p.set_defaults(func=_cmd_smoke)


def _cmd_smoke(args: argparse.Namespace) -> int:
    settings = load_settings(profile=args.profile)
    environment = Environment.parse(args.env)
    if bool(args.ref) == bool(args.image):
        raise ConfigError("give either IMAGE[:VERSION] or --ref REF")
    if args.ref:
        ref, jobs = ImageRef.parse(args.ref), builtin_jobs(settings)
    else:
        jobs = jobs_for(settings, parse_spec(args.image)[0])  # the declarations are read before any registry
        ref = resolve(settings, environment, args.image).ref
    result = smoke(settings, environment, ref, jobs, args.platform, args.parallel)
    show_suite(result)
    if args.junit:
        args.junit.write_text(junit_xml(result))
    if args.json:
        args.json.write_text(json.dumps(predicate(result), indent=2, sort_keys=True) + "\n")
    if args.attest:
        # A later result supersedes an earlier one, failed or not: promotion reads the newest.
        attestations.attest(settings, environment, result.image, attestations.AttestationKind.SMOKE, predicate(result),
                            replace=True)
    if not result.passed:
        raise GateFailed("smoke failed:\n" + "\n".join(f"  - {line}" for line in result.failures()),
                         "the log tail of each failed job is printed above")
    return 0
