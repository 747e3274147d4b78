"""`moka-images plan`: load the declarations, ask the test registry what exists, and decide every image."""

from __future__ import annotations

from collections.abc import Sequence

from moka_images import log
from moka_images.adapters import git
from moka_images.adapters.registry import Registry
from moka_images.config import os_base
from moka_images.config.manifests import (
    BaseImage,
    Declarations,
    input_files,
    load_declarations,
    watched_paths,
)
from moka_images.config.settings import Settings
from moka_images.errors import ManifestError, ServiceError
from moka_images.models import Digest, Environment
from moka_images.plan.graph import (
    Graph,
    Link,
    Node,
    Plan,
    Scope,
    graph_problems,
    make_plan,
    own_key,
    select,
    since,
)
from moka_images.recipes import team as team_recipe
from moka_images.stages import registries

# Code whose change alters how images are built: `--since` re-evaluates the images it concerns.
TEAM_RECIPE_PATHS = ("moka_images/recipes/team.py",)


def links(declarations: Declarations) -> list[Link]:
    """What each declared image builds on: bases on the OS base, team images on their `base`."""
    return [Link(i.name, None, i.source) if isinstance(i, BaseImage) else Link(i.name, i.base, i.source,
                                                                               i.lines.get("base"))
            for i in declarations.images]


def graph_of(declarations: Declarations) -> Graph:
    """Nodes for every declared image, with own keys over their declarations, input files and recipes.

    Raises ManifestError with every base that is not approved (the curated base images are).
    """
    problems = graph_problems(links(declarations), [b.name for b in declarations.bases])
    if problems:
        raise ManifestError(problems)
    root, nodes = declarations.root, []
    for image in declarations.images:
        if isinstance(image, BaseImage):
            recipe, paths, base = "", watched_paths(image), None
        else:
            recipe = team_recipe.recipe_hash(has_jars=bool(image.lock and image.lock.jars))
            paths, base = (*watched_paths(image), *TEAM_RECIPE_PATHS), image.base
        key = own_key(image.key_declaration(), input_files(root, image), recipe)
        nodes.append(Node(image.name, image.version, key, base, image.source, paths))
    return Graph(nodes)


def os_base_digest(settings: Settings) -> Digest:
    """The pinned OS base (written by `moka-images dev up`)."""
    return Digest(os_base.read_lock(settings).digest)


def inventory(settings: Settings, client: Registry, graph: Graph) -> dict[str, list[str]]:
    """Existing tags of every image in the test registry."""
    return {name: client.list_tags(settings.repository(name)) for name in graph.names}


def resolve_skipped(settings: Settings, client: Registry, plan: Plan) -> Plan:
    """Settle the plan on the digests of up-to-date bases, so their dependents are decided for good."""
    while todo := plan.to_resolve():
        for image, tag in todo:
            digest = client.head_manifest(settings.repository(image), tag)
            if digest is None:
                raise ServiceError(f"{settings.repository(image)}:{tag} was listed but is gone",
                                   "someone is deleting tags in the test registry; run again")
            plan = plan.settle(image, digest)
    return plan


def compute_plan(settings: Settings, *, since_rev: str | None = None, images: Sequence[str] = ()) -> Plan:
    """The build plan for the checkout at settings.root against the test registry's inventory."""
    with log.step("plan"):
        declarations = load_declarations(settings.root)
        graph = graph_of(declarations)
        scopes: list[Scope] = []
        if since_rev:
            scopes.append(since(graph, git.changed_paths(settings.root, since_rev), since_rev))
        if images:
            scopes.append(select(graph, images))
        client = registries.client(settings, Environment.TEST)
        plan = make_plan(graph, os_base_digest(settings), inventory(settings, client, graph), scopes=scopes)
        return resolve_skipped(settings, client, plan)

