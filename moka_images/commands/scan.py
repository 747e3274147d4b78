"""`moka-images scan` and `moka-images db mirror`: trivy per platform, judged by policy; the vulnerability databases."""

from __future__ import annotations

import argparse
import json
from datetime import date

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from moka_images.config.settings import load_settings
from moka_images.errors import GateFailed
from moka_images.models import Environment
from moka_images.plan.verdict import Verdict
from moka_images.stages import registries
from moka_images.stages.images import resolve
from moka_images.stages.verify.scan import ImageScan, judge_scan, rules_for, scan_image, scan_predicate


def render(result: ImageScan, verdict: Verdict, console: Console) -> None:
    """Findings by severity per platform, then the verdict: each blocking finding and what would unblock it."""
    console.print(escape(f"{result.image} ({result.name})"), soft_wrap=True)
    table = Table("platform", "digest", "crit", "high", "med", "low", "unk", "secrets")
    for r in result.reports:
        c = r.counts()
        table.add_row(str(r.platform), r.digest.short, *(str(c[k]) for k in
                      ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN", "SECRETS")))
    console.print(table)
    # One line per finding (platforms merged) reads at any terminal width, unlike a wide table.
    merged: dict[tuple[str, str, str, str, str | None, str], list[str]] = {}
    for f in verdict.blocking:
        label = f.severity.name if f.kind == "vulnerability" else f.kind
        merged.setdefault((label, f.id, f.package, f.installed_version, f.fixed_version, f.unblock), []).append(
            str(f.platform))
    for (label, fid, package, installed, _, unblock), platforms in merged.items():
        where = f"{package} {installed}".strip()
        console.print(escape(f"BLOCKS {label} {fid} {where} ({', '.join(platforms)}): {unblock}"), soft_wrap=True)
    for w in verdict.waived:
        console.print(escape(f"waived: {w.finding.id} {w.finding.package} ({w.finding.platform}) by exception "
                             f"(owner {w.exception.owner}, until {w.exception.expires}): {w.exception.reason}"),
                      soft_wrap=True)
    for e in verdict.expired:
        console.print(escape(e.message), style="yellow", soft_wrap=True)
    outcome = "[green]ALLOWED[/]" if verdict.allowed else f"[red]BLOCKED[/] ({len(verdict.blocking)} finding(s))"
    console.print(f"verdict for {verdict.environment}: {outcome}")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `scan`."""
    p = sub.add_parser("scan", help="scan each platform of an image with trivy and judge it by policy")
    p.add_argument("image", metavar="IMAGE[:VERSION]", help="image name, with a version or @digest")
    p.add_argument("--env", required=True, choices=[e.value for e in Environment],
                   help="environment whose registry holds the image and whose policy judges it")
    p.add_argument("--json", action="store_true", help="print the scan predicate as JSON on stdout")
    p.set_defaults(func=_cmd_scan)


def _cmd_scan(args: argparse.Namespace) -> int:
    settings = load_settings(profile=args.profile)
    environment = Environment.parse(args.env)
    rules = rules_for(settings, environment)  # a broken policy stops the scan before it starts
    client = registries.client(settings, environment)
    registries.login_tools(settings, environment)  # trivy reads the registry login from the docker config
    image = resolve(settings, environment, args.image, client)
    result = scan_image(settings, client, image.ref, image.name)
    verdict = judge_scan(settings, result, environment, date.today(), rules)
    if args.json:
        print(json.dumps(scan_predicate(result, verdict), indent=2))
    else:
        render(result, verdict, Console())
    return 0 if verdict.allowed else GateFailed.exit_code

