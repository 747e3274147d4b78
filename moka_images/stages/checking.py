"""`moka-images check`: every setting, image, manifest, policy and waiver, checked without the stack (no network,
no docker, no registry), with every problem in every file reported at once: file, line, field and a fix.

`check` is the use case (it returns a report and prints nothing); `register` and `_run` are its command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from moka_images.config.manifests import read_declarations
from moka_images.config.policies import ExceptionFile, Policy, PolicyException, exceptions_path
from moka_images.config.settings import Settings, check_settings
from moka_images.config.validation import read, validate
from moka_images.errors import ManifestError, ValidationProblem
from moka_images.models import Environment
from moka_images.plan.graph import Link, graph_problems
from moka_images.trivydb.advisories import load_advisories

POLICIES_DIR = "policies"
ADVISORIES = "security/advisories.yaml"


@dataclass(frozen=True)
class CheckReport:
    """What `check` read, and every problem it found (sorted by file and line)."""

    problems: tuple[ValidationProblem, ...]
    checked: dict[str, int]  # how many valid declarations of each kind were read

    @property
    def files(self) -> list[str]:
        """The files with problems."""
        return sorted({p.file for p in self.problems})

    def to_json(self) -> dict[str, Any]:
        """The report as plain data (`--json`)."""
        return {"ok": not self.problems, "checked": self.checked,
                "problems": [{"file": p.file, "line": p.line, "field": p.field, "message": p.message, "fix": p.fix}
                             for p in self.problems]}


def check(root: Path, today: date) -> CheckReport:
    """Check the project at `root` as a whole, offline: moka.yaml (every profile), images/, every file under
    manifests/, the build graph (approved bases, cycles), the policies every environment uses, the waivers
    beside them (an expired one is a problem naming its owner) and the advisory list."""
    profiles, problems = check_settings(root)
    settled = not problems  # every profile read: a policy none of them uses is a problem
    reading = read_declarations(root)
    problems += reading.problems
    links = [Link(ref.image, ref.base, ref.source, ref.line) for ref in reading.base_refs]
    refused = {p.file for p in reading.problems if p.field == "base"}  # one problem per `base` is enough
    problems += [p for p in graph_problems(links, reading.base_names, [f"{f}-" for f in reading.unread_families])
                 if p.file not in refused]
    policies, waivers, bad = _check_policies(root, profiles, settled, today)
    problems += bad
    advisories = root / ADVISORIES
    if advisories.exists():
        try:
            load_advisories(advisories, ADVISORIES)
        except ManifestError as exc:
            problems += exc.problems
    checked = {"profiles": len(profiles), "base images": len(reading.declarations.bases),
               "team images": len(reading.declarations.teams), "policies": policies, "waivers": waivers}
    return CheckReport(tuple(sorted(problems, key=lambda p: (p.file, p.line or 0))), checked)


def _check_policies(root: Path, profiles: list[Settings], settled: bool,
                    today: date) -> tuple[int, int, list[ValidationProblem]]:
    """Each policy an environment of a profile uses (the defaults when moka.yaml cannot be read), any other YAML
    file in policies/ (a problem if `settled` and no environment uses it), and the waivers beside them.

    Returns how many policies and waivers were read, and the problems.
    """
    used: dict[Path, dict[str, list[str]]] = {}  # policy file -> environment -> profiles
    for s in profiles:
        for env in Environment:
            used.setdefault(s.policy_path(env), {}).setdefault(env.value, []).append(s.profile)
    if not profiles:
        used = {root / POLICIES_DIR / f"{env.value}.yaml": {env.value: []} for env in Environment}
    folder = root / POLICIES_DIR
    present = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".yaml", ".yml")) if folder.is_dir() else []
    problems: list[ValidationProblem] = []
    policies = waivers = 0
    for path in sorted({*used, *(p for p in present if p.name != exceptions_path(p).name)}):
        shown = _shown(root, path)
        if not path.exists():
            of = "; ".join(env + (f" (profile {', '.join(names)})" if names else "") for env, names in used[path].items())
            problems.append(ValidationProblem(shown, "", f"missing: it is the policy of {of}",
                                              "add it, or point the environment's `policy` in moka.yaml at another"))
            continue
        if path not in used and settled:
            problems.append(ValidationProblem(shown, "", "no environment uses this policy", "name it after its "
                                              "environment (test.yaml, dev.yaml, staging.yaml, prod.yaml) or set "
                                              "the environment's `policy` in moka.yaml"))
        policy, _, bad = read(Policy, path, shown)
        policies += policy is not None
        problems += bad
    for path in sorted({exceptions_path(p) for p in used} | {p for p in present if p.name == exceptions_path(p).name}):
        if path.exists():
            count, bad = _check_waivers(path, _shown(root, path), today)
            waivers += count
            problems += bad
    return policies, waivers, problems


def _check_waivers(path: Path, shown: str, today: date) -> tuple[int, list[ValidationProblem]]:
    """The waivers of one exceptions file; an expired one is a problem naming its owner, even when others in the
    file have problems of their own."""
    _, doc, problems = read(ExceptionFile, path, shown)
    items = doc.data.get("exceptions") if doc is not None and isinstance(doc.data, dict) else None
    waivers = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        waiver, bad = validate(PolicyException, item, shown, doc=doc, at=("exceptions", str(i)))
        if waiver is not None and not bad:
            waivers.append((i, waiver))
    for i, waiver in waivers:
        if waiver.expired(today) and doc is not None:
            problems.append(ValidationProblem(
                shown, f"exceptions.{i}.expires", f"the waiver of {waiver.id} for {waiver.image} expired on "
                f"{waiver.expires} (owner: {waiver.owner})", f"{waiver.owner} renews it with a new `expires` and "
                "reason, or removes it once the finding is fixed", doc.line(("exceptions", str(i), "expires"))))
    return len(waivers), problems


def _shown(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


# ---- command line --------------------------------------------------------------------------------------

