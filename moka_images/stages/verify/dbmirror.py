"""The vulnerability DB and Java DB that trivy reads, built from our advisories (or taken from upstream) and pushed to the mirror."""

from __future__ import annotations

import hashlib
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from moka_images.adapters import trivy
from moka_images.adapters.registry import OCI_MANIFEST, Registry
from moka_images.config.settings import Settings
from moka_images.errors import ServiceError
from moka_images.findings import DbVersion
from moka_images.models import Digest
from moka_images.trivydb import builder
from moka_images.trivydb.advisories import load_advisories

ADVISORIES = Path("security/advisories.yaml")




DB_CONFIG_TYPE = "application/vnd.aquasec.trivy.config.v1+json"


DB_LAYER_TYPE = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"


JAVA_DB_LAYER_TYPE = "application/vnd.aquasec.trivy.javadb.layer.v1.tar+gzip"


CONTENT_ANNOTATION = "dev.moka-images.trivydb.content"


def _publish(client: Registry, repository: str, tag: str, archive: bytes, content: str, layer_type: str,
             title: str, created: datetime) -> Digest:
    """Push one DB archive as the single-layer OCI artifact trivy downloads, unless the mirror has its content.

    `content` identifies the database itself (not its metadata.json timestamps), so re-running `db mirror`
    with unchanged advisories keeps the DB digest and with it every cached scan.
    """
    if client.head_manifest(repository, tag) is not None:
        current = client.get_manifest(repository, tag)
        if (current.json.get("annotations") or {}).get(CONTENT_ANNOTATION) == content:
            return current.digest
    config = b"{}"
    config_digest = client.push_blob(repository, config)
    layer_digest = client.push_blob(repository, archive)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": DB_CONFIG_TYPE, "digest": str(config_digest), "size": len(config)},
        "layers": [{"mediaType": layer_type, "digest": str(layer_digest), "size": len(archive),
                    "annotations": {"org.opencontainers.image.title": title}}],
        "annotations": {"org.opencontainers.image.created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        CONTENT_ANNOTATION: content},
    }
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    return client.put_manifest(repository, tag, raw, OCI_MANIFEST)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def mirror_databases(settings: Settings, client: Registry, *, advisories: Path | None = None,
                     vuln_archive: Path | None = None, java_archive: Path | None = None,
                     now: datetime | None = None) -> tuple[Digest, Digest]:
    """Push the vulnerability DB (tag 2) and Java DB (tag 1) to the mirror; returns their digests.

    Without archives the DBs are built from the advisory list; with them (db.tar.gz / javadb.tar.gz pulled
    from upstream on a connected machine) those are pushed as they are.
    """
    now = now or datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="moka-trivydb-") as tmp:
        work = Path(tmp)
        if vuln_archive:
            vuln_tgz = vuln_archive.read_bytes()
            vuln_content = _sha256(vuln_tgz)
        else:
            path = advisories or settings.root / ADVISORIES
            shown = str(path.relative_to(settings.root)) if path.is_relative_to(settings.root) else str(path)
            db_dir = builder.build_vuln_db(load_advisories(path, shown), work / "db", now)
            vuln_tgz = builder.pack(db_dir, (builder.VULN_DB_FILE, builder.METADATA_FILE))
            vuln_content = _sha256((db_dir / builder.VULN_DB_FILE).read_bytes())
        if java_archive:
            java_tgz = java_archive.read_bytes()
            java_content = _sha256(java_tgz)
        else:
            java_dir = builder.build_java_db(work / "java-db", now)
            java_tgz = builder.pack(java_dir, (builder.JAVA_DB_FILE, builder.METADATA_FILE))
            java_content = _sha256((java_dir / builder.JAVA_DB_FILE).read_bytes())
    vuln = _publish(client, settings.trivy.db_repository, str(builder.VULN_DB_SCHEMA), vuln_tgz, vuln_content,
                    DB_LAYER_TYPE, "db.tar.gz", now)
    java = _publish(client, settings.trivy.java_db_repository, str(builder.JAVA_DB_SCHEMA), java_tgz, java_content,
                    JAVA_DB_LAYER_TYPE, "javadb.tar.gz", now)
    return vuln, java


def ensure_databases(settings: Settings, mirror: Registry) -> DbVersion:
    """The DB version the mirror serves, fetched into trivy's cache if the cache holds another one."""
    found = {}
    for repo, tag in ((settings.trivy.db_repository, builder.VULN_DB_SCHEMA),
                      (settings.trivy.java_db_repository, builder.JAVA_DB_SCHEMA)):
        digest = mirror.head_manifest(repo, str(tag))
        if digest is None:
            raise ServiceError(f"the mirror {settings.mirror} has no {repo}:{tag}",
                               "push the databases: `moka-images db mirror`")
        found[repo] = digest
    return trivy.download_databases(trivy_env(settings), found[settings.trivy.db_repository],
                                    found[settings.trivy.java_db_repository])


def trivy_env(settings: Settings) -> trivy.TrivyEnv:
    """trivy's cache under settings.home and the DB repositories in the mirror."""
    return trivy.TrivyEnv(settings.home / "cache" / "trivy", settings.mirror,
                          settings.trivy.db_repository, settings.trivy.java_db_repository)
