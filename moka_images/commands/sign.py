"""`moka-images sign | attest | verify`: cosign signatures and attestations on an image digest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from moka_images import log
from moka_images.config.settings import Settings, load_settings
from moka_images.errors import ConfigError, GateFailed
from moka_images.models import Environment
from moka_images.stages import keys
from moka_images.stages.images import ResolvedImage, resolve
from moka_images.stages.verify.attestations import AttestationKind, attest
from moka_images.stages.verify.signing import Verification, sign, verify


def register(sub: argparse._SubParsersAction) -> None:
    """Add `sign`, `attest` and `verify`."""
    envs = [e.value for e in Environment]
    p = sub.add_parser("sign", help="sign an image's index digest with the environment's key (idempotent)")
    p.add_argument("image", metavar="IMAGE[:VERSION]", help="image name, with a version (default latest) or @digest")
    p.add_argument("--env", required=True, choices=envs, help="environment whose registry and key to use")
    p.set_defaults(func=_cmd_sign)
    a = sub.add_parser("attest", help="attach a signed predicate (SBOM, scan, smoke, promotion) to an image")
    a.add_argument("image", metavar="IMAGE[:VERSION]", help="image name, with a version (default latest) or @digest")
    a.add_argument("--env", required=True, choices=envs, help="environment whose registry and key to use")
    a.add_argument("--type", required=True, choices=[k.value for k in AttestationKind], help="what the predicate is")
    a.add_argument("--predicate", required=True, type=Path, metavar="FILE", help="the predicate, a JSON object")
    a.set_defaults(func=_cmd_attest)
    v = sub.add_parser("verify", help="check an image's signature and every attestation with the environment's key")
    v.add_argument("image", metavar="IMAGE[:VERSION]", help="image name, with a version (default latest) or @digest")
    v.add_argument("--env", required=True, choices=envs, help="environment whose registry and key to use")
    v.add_argument("--json", action="store_true", help="print the result, predicates included, as JSON")
    v.set_defaults(func=_cmd_verify)


def _resolve(args: argparse.Namespace) -> tuple[Settings, Environment, ResolvedImage]:
    settings = load_settings(profile=args.profile)
    environment = Environment.parse(args.env)
    return settings, environment, resolve(settings, environment, args.image)


def _cmd_sign(args: argparse.Namespace) -> int:
    settings, environment, image = _resolve(args)
    with log.step(f"sign {image.name} in {environment}"):
        sign(settings, environment, image.ref)
    return 0


def _cmd_attest(args: argparse.Namespace) -> int:
    try:
        predicate = json.loads(args.predicate.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the predicate {args.predicate}: {exc}", "give a JSON file") from None
    if not isinstance(predicate, dict):
        raise ConfigError(f"the predicate {args.predicate} is not a JSON object", "wrap it in {...}")
    settings, environment, image = _resolve(args)
    with log.step(f"attest {args.type} on {image.name} in {environment}"):
        attest(settings, environment, image.ref, args.type, predicate)
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    settings, environment, image = _resolve(args)
    result = verify(settings, environment, image.ref)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        render(settings, image, result, Console())
    return 0 if result.ok else GateFailed.exit_code


def render(settings: Settings, image: ResolvedImage, result: Verification, console: Console) -> None:
    """The verification as people read it."""
    shown = f"{image.name}:{image.tag}" if image.tag else image.name
    console.print(escape(f"{result.image} ({shown}) in {result.environment}"), soft_wrap=True)
    if result.signature.ok:
        console.print(escape(f"signature: verified with {keys.describe(settings, result.environment)}, "
                             f"{settings.env(result.environment).public_key}"), style="green", soft_wrap=True)
    else:
        console.print(escape(f"signature: NOT verified with {keys.describe(settings, result.environment)}: "
                             f"{result.signature.problem}"), style="bold red", soft_wrap=True)
    table = Table("kind", "signer key", "predicate", title="attestations", title_justify="left")
    for att in result.attestations.valid:
        table.add_row(att.kind.value if att.kind else att.predicate_type, escape(keys.describe(settings, att.signer)),
                      escape(att.summary()))
    console.print(table)
    for bad in result.attestations.rejected:
        console.print(escape(f"REJECTED {bad.predicate_type}: {bad.reason}"), style="bold red", soft_wrap=True)
    console.print("verified" if result.ok else "NOT verified", style="green" if result.ok else "bold red")
