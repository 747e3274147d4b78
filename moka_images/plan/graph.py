"""The build plan: a graph of base and team images and, for each, SKIP / BUILD / REFUSE with a reason. Pure.

An image's identity for building is its own-inputs key (declaration without version, input files, recipe)
plus the digest of the image it is built on. Every build gets an immutable tag
`{version}-{own[:10]}-{base[:10]}`, so the registry's tag list is the inventory of what has been built.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import semver

from moka_images.errors import ConfigError, ValidationProblem
from moka_images.models import Digest, InputFile

OS_BASE = "os-base"  # how the OS base is shown where a base image's name would be
_BUILD_TAG_RE = re.compile(r"^(?P<version>.+)-(?P<own>[0-9a-f]{10})-(?P<base>[0-9a-f]{10})$")


class Action(str, Enum):
    """What the plan does with one image."""

    BUILD = "build"
    SKIP = "skip"
    REFUSE = "refuse"


def own_key(declaration: Mapping[str, Any], files: Iterable[InputFile], recipe: str) -> str:
    """sha256 hex of an image's own inputs: declaration (without version), input files and build recipe."""
    doc = {
        "declaration": declaration,
        "files": sorted([f.path, f.sha256, f.executable] for f in files),
        "recipe": recipe,
    }
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class BuildTag:
    """An immutable build tag, `{version}-{own10}-{base10}`."""

    version: str
    own: str
    base: str

    @classmethod
    def make(cls, version: str, own_key: str, base: Digest) -> BuildTag:
        """The tag of a build of `version` with these own inputs on this base."""
        return cls(version, own_key[:10], base.hex[:10])

    @classmethod
    def parse(cls, tag: str) -> BuildTag | None:
        """The parts of a build tag, or None for any other tag (rolling tags, signatures, ...)."""
        match = _BUILD_TAG_RE.fullmatch(tag)
        if not match or not semver.Version.is_valid(match["version"]):
            return None
        return cls(match["version"], match["own"], match["base"])

    def __str__(self) -> str:
        return f"{self.version}-{self.own}-{self.base}"


def rolling_tags(version: str) -> list[str]:
    """Tags that promotion moves to a build: `1.2.3`, `1.2` and `latest` (a pre-release gets only its own)."""
    parsed = semver.Version.parse(version)
    if parsed.prerelease:
        return [version]
    return [version, f"{parsed.major}.{parsed.minor}", "latest"]


@dataclass(frozen=True)
class Node:
    """One image in the graph: its name, version, own key, base image (None: the OS base) and sources."""

    name: str
    version: str
    own_key: str
    base: str | None
    source: str  # the declaring file, named in reasons
    paths: tuple[str, ...] = ()  # root-relative files or folders whose change touches it


class Graph:
    """Images and what they are built on, in topological order: layer by layer from the OS base, by name."""

    def __init__(self, nodes: Iterable[Node]) -> None:
        self._nodes: dict[str, Node] = {}
        for node in nodes:
            if node.name in self._nodes:
                raise ConfigError(f"image `{node.name}` is declared twice")
            self._nodes[node.name] = node
        self._children: dict[str, list[str]] = {name: [] for name in self._nodes}
        for node in self._nodes.values():
            if node.base is not None:
                if node.base not in self._nodes:
                    raise ConfigError(f"`{node.name}` is built on unknown image `{node.base}`")
                self._children[node.base].append(node.name)
        self.order: tuple[Node, ...] = self._sorted()

    def _sorted(self) -> tuple[Node, ...]:
        out: list[Node] = []
        layer = sorted(n for n, node in self._nodes.items() if node.base is None)
        while layer:  # layer by layer: all bases, then what builds on them, each layer by name
            out += [self._nodes[n] for n in layer]
            layer = sorted(child for n in layer for child in self._children[n])
        if len(out) != len(self._nodes):
            stuck = sorted(set(self._nodes) - {n.name for n in out})
            raise ConfigError(f"images build on each other in a cycle: {', '.join(stuck)}")
        return tuple(out)

    @property
    def names(self) -> list[str]:
        """Image names in topological order."""
        return [n.name for n in self.order]

    def node(self, name: str) -> Node:
        """The node called `name`."""
        return self._nodes[name]

    def children(self, name: str) -> list[str]:
        """Images built directly on `name`."""
        return list(self._children[name])

    def dependents(self, names: Iterable[str]) -> set[str]:
        """Every image built, directly or not, on one of `names`."""
        out: set[str] = set()
        todo = list(names)
        while todo:
            for child in self._children[todo.pop()]:
                if child not in out:
                    out.add(child)
                    todo.append(child)
        return out

    def ancestors(self, name: str) -> list[str]:
        """The chain of images `name` is built on, nearest first."""
        chain: list[str] = []
        base = self._nodes[name].base
        while base is not None:
            chain.append(base)
            base = self._nodes[base].base
        return chain


@dataclass(frozen=True)
class Link:
    """What one image is declared to build on (None: the OS base), and where: file and line of its `base`."""

    image: str
    base: str | None
    source: str
    line: int | None = None


def graph_problems(links: Iterable[Link], approved: Collection[str],
                   unknown_prefixes: Collection[str] = ()) -> list[ValidationProblem]:
    """Every problem of the build graph at once: a base that is not approved (with a near name), and images that
    build on each other in a cycle. A base starting with one of `unknown_prefixes` is not judged: the file that
    declares such bases could not be read, so whether it is approved is unknown (that file's problem says why).
    """
    links = list(links)
    problems = []
    listed = ", ".join(sorted(approved)) or "none declared"
    for link in links:
        if link.base is None or link.base in approved or link.base.startswith(tuple(unknown_prefixes)):
            continue
        near = difflib.get_close_matches(link.base, sorted(approved), n=1, cutoff=0.6)
        problems.append(ValidationProblem(link.source, "base", f"`{link.base}` is not an approved base",
                                          (f"did you mean `{near[0]}`? " if near else "") + f"approved: {listed}",
                                          link.line))
    by_name = {link.image: link for link in links}
    reported: set[str] = set()
    for start in sorted(by_name):
        chain: list[str] = []
        name: str | None = start
        while name in by_name and name not in chain and name not in reported:
            chain.append(name)
            name = by_name[name].base
        if name in chain:
            cycle = chain[chain.index(name):]
            first = by_name[cycle[0]]
            problems.append(ValidationProblem(first.source, "base", "images build on each other in a cycle: "
                                              + " -> ".join([*cycle, cycle[0]]),
                                              "build every image on an approved base", first.line))
        reported |= set(chain)
    return problems


@dataclass(frozen=True)
class Scope:
    """A subset of the graph to work on; images outside it are skipped with `reason`."""

    images: frozenset[str]
    reason: str


def since(graph: Graph, changed: Iterable[str], rev: str) -> Scope:
    """Images touched by the changed paths (as `git diff --name-only REV` lists them) and their dependents."""
    paths = [p.strip().removeprefix("./").rstrip("/") for p in changed if p.strip()]
    hit = {n.name for n in graph.order
           if any(p == w or p.startswith(w.rstrip("/") + "/") for p in paths for w in n.paths)}
    return Scope(frozenset(hit | graph.dependents(hit)), f"unchanged since {rev}")


def select(graph: Graph, names: Collection[str]) -> Scope:
    """The images named on the command line; an unknown name is an error with a near name."""
    for name in names:
        if name not in graph.names:
            near = difflib.get_close_matches(name, graph.names, n=1)
            raise ConfigError(f"no image called `{name}`",
                              f"did you mean `{near[0]}`?" if near else f"known: {', '.join(graph.names)}")
    return Scope(frozenset(names), "not selected")


@dataclass(frozen=True)
class BuildDecision:
    """What happens to one image and why."""

    image: str
    action: Action
    reason: str
    version: str
    own_key: str
    base: str | None
    base_digest: Digest | None  # None while the base has not been built (or resolved) yet
    tag: str | None  # the build tag to create (BUILD) or already there (SKIP); None until the base is known
    selected: bool = True  # asked for (by name or by a change), not only decided as a base another one needs

    @property
    def pending(self) -> bool:
        """A build that waits for its base's digest; `Plan.settle` decides it for good."""
        return self.action is Action.BUILD and self.base_digest is None

    def to_json(self) -> dict[str, Any]:
        """The decision as plain data."""
        return {
            "image": self.image, "action": self.action.value, "reason": self.reason, "version": self.version,
            "own_key": self.own_key, "base": self.base or OS_BASE,
            "base_digest": str(self.base_digest) if self.base_digest else None, "tag": self.tag,
            "pending": self.pending, "rolling_tags": rolling_tags(self.version),
        }


@dataclass(frozen=True)
class Plan:
    """Decisions for every image in topological order, and the inputs they were made from."""

    graph: Graph
    os_base: Digest
    inventory: Mapping[str, tuple[str, ...]]
    digests: Mapping[str, Digest]
    scopes: tuple[Scope, ...]
    decisions: tuple[BuildDecision, ...] = field(default=())

    def decision(self, image: str) -> BuildDecision:
        """The decision about one image."""
        return next(d for d in self.decisions if d.image == image)

    def by_action(self, action: Action) -> list[BuildDecision]:
        """Decisions with this action, in build order."""
        return [d for d in self.decisions if d.action is action]

    def settle(self, image: str, digest: Digest) -> Plan:
        """Re-decide with `image` known at `digest` (just built, or resolved from its SKIP tag).

        The build stage calls this in topological order, so each dependent is decided on its base's real digest:
        it may turn out up to date (SKIP), or get its final build tag.
        """
        return make_plan(self.graph, self.os_base, self.inventory, digests={**self.digests, image: digest},
                         scopes=self.scopes)

    def to_resolve(self) -> list[tuple[str, str]]:
        """(image, build tag) of skipped images whose digest a pending dependent needs; resolve, then settle."""
        out = []
        for d in self.decisions:
            if d.action is Action.SKIP and d.tag and d.image not in self.digests and any(
                    self.decision(child).pending for child in self.graph.children(d.image)):
                out.append((d.image, d.tag))
        return out

    def to_json(self) -> dict[str, Any]:
        """The plan as plain data (`--json`)."""
        return {
            "os_base": str(self.os_base),
            "images": [d.to_json() for d in self.decisions],
            "summary": {a.value: len(self.by_action(a)) for a in Action},
        }


def make_plan(graph: Graph, os_base: Digest, inventory: Mapping[str, Sequence[str]], *,
              digests: Mapping[str, Digest] | None = None, scopes: Sequence[Scope] = ()) -> Plan:
    """Decide every image, in topological order.

    `inventory` holds each image's existing tags in the test registry (any tags; non-build tags are ignored).
    `digests` holds the digests of images already known in this run (built, or resolved from their SKIP tag).
    Images outside the scopes are skipped, except the bases of scoped images: those are decided like any
    image, so a base that has no build of its current inputs is built for the image that needs it.
    """
    known = dict(digests or {})
    tags = {name: tuple(inventory.get(name, ())) for name in graph.names}
    focus = set(graph.names)
    for scope in scopes:
        focus &= scope.images
    needed_by = {base: name for name in sorted(focus) for base in graph.ancestors(name) if base not in focus}
    decided: dict[str, BuildDecision] = {}
    for node in graph.order:
        base_decision = decided.get(node.base) if node.base else None
        base_digest = os_base if node.base is None else known.get(node.base)
        if node.name in focus:
            decision = _decide(node, base_digest, base_decision, tags[node.name])
        elif node.name in needed_by:
            decision = _decide(node, base_digest, base_decision, tags[node.name])
            decision = replace(decision, reason=f"{decision.reason} (needed by {needed_by[node.name]})",
                               selected=False)
        else:
            reason = next(s.reason for s in scopes if node.name not in s.images)
            tag = str(BuildTag.make(node.version, node.own_key, base_digest)) if base_digest else None
            decision = BuildDecision(node.name, Action.SKIP, reason, node.version, node.own_key, node.base,
                                     base_digest, tag if tag in tags[node.name] else None, selected=False)
        decided[node.name] = decision
    return Plan(graph, os_base, tags, known, tuple(scopes), tuple(decided[n] for n in graph.names))


def _decide(node: Node, base_digest: Digest | None, base_decision: BuildDecision | None,
            tags: Sequence[str]) -> BuildDecision:
    base_name = node.base or OS_BASE

    def decision(action: Action, reason: str, tag: str | None = None) -> BuildDecision:
        return BuildDecision(node.name, action, reason, node.version, node.own_key, node.base, base_digest, tag)

    # Refusals come first and depend only on the image's own history, never on its base's digest.
    if base_decision is not None and base_decision.action is Action.REFUSE:
        return decision(Action.REFUSE, f"its base {base_name} is refused")
    builds = [b for b in (BuildTag.parse(t) for t in tags) if b is not None]
    version = semver.Version.parse(node.version)
    newest = max((semver.Version.parse(b.version) for b in builds), default=None)
    if newest is not None and version < newest:
        return decision(Action.REFUSE, f"version {node.version} is lower than {newest}, which was already built: "
                                       f"versions only go up; set `version` above {newest} in {node.source}")
    same_version = [b for b in builds if b.version == node.version]
    if same_version and not any(b.own == node.own_key[:10] for b in same_version):
        return decision(Action.REFUSE, f"inputs changed but version {node.version} was already built from other "
                                       f"inputs: bump `version` in {node.source}")
    wanted = str(BuildTag.make(node.version, node.own_key, base_digest)) if base_digest else None
    if wanted and any(str(b) == wanted for b in builds):
        return decision(Action.SKIP, f"up to date as {wanted}", wanted)
    if not builds:
        reason = "first build"
    elif not same_version:
        reason = f"new version {node.version} (newest built: {newest})"
    elif base_digest is not None:
        old = sorted({b.base for b in same_version if b.own == node.own_key[:10]})
        reason = f"base {base_name} changed: {', '.join('sha256:' + o + '…' for o in old)} -> " \
                 f"sha256:{base_digest.hex[:10]}…"
    else:
        reason = ""
    if base_digest is None:
        skipped = base_decision is not None and base_decision.action is Action.SKIP
        wait = f"waits for the digest of {base_name}" if skipped else f"base {base_name} rebuilds in this plan"
        reason = f"{reason}; {wait}" if reason else wait
    return decision(Action.BUILD, reason, wanted)
