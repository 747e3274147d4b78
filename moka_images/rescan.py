"""`moka-images rescan --env ENV`: scan again everything an environment serves, with the DB the mirror has now.

An image that was clean when it was promoted can become vulnerable. The nightly job mirrors a fresh DB, then
runs this for each environment: every digest a rolling tag (`latest`, `X.Y`, `X.Y.Z`) points at is scanned
(trivy, cached by platform digest and DB, so only a new DB costs work) and judged by the environment's own
policy. A finding is new when the scan of the same platform with the DB before this one (from the scan
cache) did not have it. The exit code is the gate's (7) when anything served is now blocked.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import semver
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import log, registries, scan
from .adapters import ecr
from .adapters.registry import RegistryClient, is_local
from .config.settings import Settings, load_settings
from .errors import GateFailed
from .findings import ScanReport
from .models import Digest, Environment, ImageRef
from .plan.graph import BuildTag
from .plan.verdict import Verdict

_MINOR_RE = re.compile(r"^\d+\.\d+$")


@dataclass(frozen=True)
class Rescan:
    """One digest an environment serves, scanned again and judged by the environment's policy."""

    image: str  # the repository without the prefix, as in manifests/
    ref: ImageRef  # pinned to the digest
    tags: tuple[str, ...]  # the rolling tags pointing at it
    reports: tuple[ScanReport, ...]
    verdict: Verdict
    new: tuple[str, ...] | None  # findings absent from the previous scan; None when there was none before

    @property
    def blocked(self) -> bool:
        """Whether the environment's policy would now refuse it."""
        return not self.verdict.allowed

    def counts(self) -> dict[str, int]:
        """Findings by severity (and secrets), summed over platforms."""
        total: dict[str, int] = {}
        for report in self.reports:
            for key, n in report.counts().items():
                total[key] = total.get(key, 0) + n
        return total

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form (`--json`)."""
        db = self.reports[0].db if self.reports else None
        return {"image": self.image, "repository": self.ref.repository, "digest": str(self.ref.digest),
                "tags": list(self.tags), "db": db.vuln_updated_at if db else None, "counts": self.counts(),
                "allowed": self.verdict.allowed, "blocking": [f.to_json() for f in self.verdict.blocking],
                "new": list(self.new) if self.new is not None else None}


def is_rolling(tag: str) -> bool:
    """`latest`, `X.Y.Z[-pre]` or `X.Y`: the tags promotion moves, which name what an environment serves.

    Build tags (`{version}-{own}-{base}`) and per-arch build tags are valid semver too, but name builds.
    """
    if BuildTag.parse(tag) is not None or BuildTag.parse(tag.rsplit("-", 1)[0]) is not None:
        return False
    return tag == "latest" or semver.Version.is_valid(tag) or bool(_MINOR_RE.match(tag))


def finding_keys(report: ScanReport) -> set[str]:
    """Identities of a report's findings, comparable between scans of one platform with different DBs."""
    return ({f"{v.id} {v.package} ({report.platform})" for v in report.vulnerabilities}
            | {f"secret {s.rule_id} {s.path} ({report.platform})" for s in report.secrets})


def new_findings(now: Sequence[ScanReport], before: Sequence[ScanReport | None]) -> tuple[str, ...] | None:
    """What `now` has that the earlier scans of the same platforms did not; None if any platform has no past."""
    if not now or any(b is None for b in before):
        return None
    seen = set().union(*(finding_keys(b) for b in before if b is not None))
    return tuple(sorted(set().union(*(finding_keys(r) for r in now)) - seen))


def repositories(settings: Settings, environment: Environment, client: RegistryClient) -> list[str]:
    """The environment's repositories under the prefix: the registry's catalog locally, ECR's list otherwise."""
    cfg = settings.env(environment)
    if is_local(cfg.registry):
        names = client.catalog()
    else:
        pages = ecr.client(settings, "ecr", cfg).get_paginator("describe_repositories").paginate(
            registryId=cfg.account)
        names = [r["repositoryName"] for page in pages for r in page["repositories"]]
    prefix = f"{settings.repository_prefix}/" if settings.repository_prefix else ""
    return sorted(n for n in names if n.startswith(prefix))


def served(client: RegistryClient, repository: str) -> dict[Digest, tuple[str, ...]]:
    """Each digest a rolling tag of `repository` points at, with those tags."""
    out: dict[Digest, list[str]] = {}
    for tag in sorted(client.list_tags(repository)):
        if is_rolling(tag) and (digest := client.head_manifest(repository, tag)) is not None:
            out.setdefault(digest, []).append(tag)
    return {d: tuple(tags) for d, tags in out.items()}


def rescan(settings: Settings, environment: Environment, today: date | None = None) -> list[Rescan]:
    """Scan and judge every digest `environment` serves, with the databases the mirror holds now."""
    today = today or datetime.now(UTC).date()
    rules = scan.rules_for(settings, environment)  # a broken policy stops the rescan before it starts
    client = registries.client(settings, environment)
    registries.login_tools(settings, environment)  # trivy reads the registry login from the docker config
    registry = settings.env(environment).registry
    prefix = f"{settings.repository_prefix}/" if settings.repository_prefix else ""
    out = []
    for repository in repositories(settings, environment, client):
        name = repository.removeprefix(prefix)
        for digest, tags in served(client, repository).items():
            ref = ImageRef(registry, repository, digest=digest)
            with log.step(f"rescan {name} {digest.short}", tags=",".join(tags)):
                result = scan.scan_image(settings, client, ref, name)
                verdict = scan.judge_scan(settings, result, environment, today, rules)
            before = [_previous(settings, r) for r in result.reports]
            out.append(Rescan(name, ref, tags, result.reports, verdict, new_findings(result.reports, before)))
    return out


def _previous(settings: Settings, report: ScanReport) -> ScanReport | None:
    """The cached scan of the same platform manifest with the newest DB older than this report's."""
    earlier = [r for r in scan.cached_reports(settings, report.digest)
               if r.db.key != report.db.key and r.db.vuln_updated_at < report.db.vuln_updated_at]
    return earlier[-1] if earlier else None


def table(environment: Environment, results: Sequence[Rescan]) -> Table:
    """One row per digest served: tags, counts, verdict and what is new."""
    out = Table(title=f"rescan of {environment}", title_justify="left")
    for column in ("image", "tags", "digest", "crit", "high", "med", "low", "verdict", "new since the last scan"):
        out.add_column(column, overflow="fold")
    for r in results:
        c = r.counts()
        verdict = "[green]allowed[/]" if r.verdict.allowed else f"[red]BLOCKED[/] ({len(r.verdict.blocking)})"
        new = "(first scan)" if r.new is None else escape(", ".join(r.new)) or "-"
        out.add_row(escape(r.image), escape(" ".join(r.tags)), r.ref.digest.short if r.ref.digest else "",
                    *(str(c.get(k, 0)) for k in ("CRITICAL", "HIGH", "MEDIUM", "LOW")), verdict, new)
    return out


def register(sub: argparse._SubParsersAction) -> None:
    """Add `rescan`."""
    p = sub.add_parser("rescan", help="scan again what an environment serves, with the mirror's current DB")
    p.add_argument("--env", required=True, choices=[e.value for e in Environment],
                   help="environment whose images are rescanned and whose policy judges them")
    p.add_argument("--json", action="store_true", help="print one object per digest as JSON on stdout")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    environment = Environment.parse(args.env)
    results = rescan(load_settings(profile=args.profile), environment)
    if args.json:
        sys.stdout.write(json.dumps([r.to_json() for r in results], indent=2) + "\n")
    else:
        Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table(environment, results))
    blocked = [r for r in results if r.blocked]
    if blocked:
        raise GateFailed(f"{len(blocked)} image(s) served in {environment} are now blocked by its policy: "
                         + ", ".join(f"{r.image}@{r.ref.digest.short if r.ref.digest else ''}" for r in blocked),
                         "fix and promote a new build, or add an exception with an owner and expiry")
    return 0
