"""`moka-images rescan --env ENV`: scan again everything an environment serves, with the DB the mirror has now.

An image that was clean when it was promoted can become vulnerable. The nightly job mirrors a fresh DB, then
runs this for each environment: every digest a rolling tag (`latest`, `X.Y`, `X.Y.Z`) points at is scanned
(trivy, cached by platform digest and DB, so only a new DB costs work) and judged by the environment's own
policy. A finding is new when the scan of the same platform with the DB before this one (from the scan
cache) did not have it. The exit code is the gate's (7) when anything served is now blocked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from moka_images import log
from moka_images.adapters import ecr
from moka_images.adapters.registry import Registry, is_local
from moka_images.config.settings import Settings
from moka_images.findings import ScanReport
from moka_images.models import Digest, Environment, ImageRef
from moka_images.plan.tags import TagKind, kind_of
from moka_images.plan.verdict import Verdict
from moka_images.stages import registries, repositories
from moka_images.stages.verify import scan


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


def repository_names(settings: Settings, environment: Environment, client: Registry) -> list[str]:
    """The environment's repositories under the prefix: the registry's catalog locally, ECR's list otherwise."""
    cfg = settings.env(environment)
    if is_local(cfg.registry):
        names = client.catalog()
    else:
        names = ecr.list_repositories(repositories.aws_access(settings, environment), cfg.account)
    prefix = f"{settings.repository_prefix}/" if settings.repository_prefix else ""
    return sorted(n for n in names if n.startswith(prefix))


def served(client: Registry, repository: str) -> dict[Digest, tuple[str, ...]]:
    """Each digest a rolling tag of `repository` points at, with those tags."""
    out: dict[Digest, list[str]] = {}
    for tag in sorted(client.list_tags(repository)):
        if kind_of(tag) is TagKind.ROLLING and (digest := client.head_manifest(repository, tag)) is not None:
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
    for repository in repository_names(settings, environment, client):
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

