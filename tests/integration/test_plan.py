"""`plan` against the real test registry: tags listed, a skipped base's tag resolved to its digest, settled.

Uses its own repository prefix (scratch-plan/...), so it never touches the images the build pushes.
"""

from __future__ import annotations

import json

import pytest

from moka_images.adapters.registry import RegistryClient, digest_of
from moka_images.config.manifests import load_declarations
from moka_images.config.settings import Settings
from moka_images.models import Digest, Environment
from moka_images.plan.graph import Action, BuildTag
from moka_images.stages import planning, registries

pytestmark = pytest.mark.integration


def push_stub(client: RegistryClient, repository: str, tag: str) -> Digest:
    """A tiny single-platform OCI image under `tag`: enough to stand for a build in the inventory."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    config_digest = client.push_blob(repository, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": str(config_digest),
                   "size": len(config)},
        "layers": [],
    }).encode()
    return client.put_manifest(repository, tag, manifest, "application/vnd.oci.image.manifest.v1+json")


def test_plan_reads_the_real_inventory(stack: Settings) -> None:
    settings = stack.model_copy(update={"repository_prefix": "scratch-plan"})
    client = registries.client(settings, Environment.TEST)
    graph = planning.graph_of(load_declarations(settings.root))
    spark = graph.node("spark-3.5")
    spark_tag = str(BuildTag.make(spark.version, spark.own_key, planning.os_base_digest(settings)))
    spark_digest = push_stub(client, settings.repository("spark-3.5"), spark_tag)
    assert spark_digest == digest_of(client.get_manifest(settings.repository("spark-3.5"), spark_tag).raw)

    plan = planning.compute_plan(settings, images=["data-eng/etl-jobs"])

    assert plan.decision("spark-3.5").action is Action.SKIP
    assert plan.decision("spark-3.5").reason == f"up to date as {spark_tag} (needed by data-eng/etl-jobs)"
    etl = plan.decision("data-eng/etl-jobs")
    assert etl.base_digest == spark_digest
    assert etl.action is Action.BUILD and not etl.pending
    etl_node = graph.node("data-eng/etl-jobs")
    assert etl.tag == str(BuildTag.make(etl_node.version, etl_node.own_key, spark_digest))
    assert plan.decision("spark-4.0").reason == "not selected"
