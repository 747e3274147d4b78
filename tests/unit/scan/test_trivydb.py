"""The local trivy DBs: advisory validation, the bucket layout trivy reads, metadata and the Java DB schema."""

from __future__ import annotations

import gzip
import io
import json
import re
import sqlite3
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from moka_images.errors import ManifestError
from moka_images.trivydb import bbolt, builder
from moka_images.trivydb.advisories import AdvisoryFile, load_advisories

_ONE = {"id": "CVE-2099-0001", "severity": "HIGH", "title": "t", "affects": [{"os": "debian 12", "package": "jq"}]}
ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _advisories(*vulns: dict) -> AdvisoryFile:
    return AdvisoryFile.model_validate({"vulnerabilities": list(vulns)})


def test_the_repository_advisories_are_valid_and_flag_jq_critical() -> None:
    parsed = load_advisories(ROOT / "security/advisories.yaml")
    critical = [v for v in parsed.vulnerabilities if v.severity == "CRITICAL"]
    assert any(a.os == "debian 12" and a.package == "jq" and a.fixed_version for v in critical for a in v.affects)
    assert {v.severity for v in parsed.vulnerabilities} >= {"CRITICAL", "HIGH", "MEDIUM"}


def test_vuln_db_has_trivys_buckets_and_values() -> None:
    tree = builder.vuln_db_tree(_advisories(
        {"id": "CVE-2099-0001", "severity": "CRITICAL", "title": "t", "published": "2099-01-02",
         "affects": [{"os": "debian 12", "package": "jq", "fixed_version": "1.7.1-1"}]},
        {"id": "CVE-2099-0002", "severity": "HIGH", "title": "u",
         "affects": [{"os": "debian 12", "package": "jq"},
                     {"ecosystem": "maven", "package": "g:a", "vulnerable_versions": ["<2.0"],
                      "patched_versions": ["2.0"]}]},
    ))
    assert set(tree) == {b"debian 12", b"maven::GitHub Security Advisory Maven", b"data-source", b"vulnerability"}
    jq = tree[b"debian 12"][b"jq"]
    assert json.loads(jq[b"CVE-2099-0001"]) == {"FixedVersion": "1.7.1-1", "Severity": 4}
    assert json.loads(jq[b"CVE-2099-0002"]) == {"Severity": 3, "Status": 2}  # affected, no fix
    maven = json.loads(tree[b"maven::GitHub Security Advisory Maven"][b"g:a"][b"CVE-2099-0002"])
    assert maven == {"VulnerableVersions": ["<2.0"], "PatchedVersions": ["2.0"]}
    assert json.loads(tree[b"data-source"][b"debian 12"])["ID"] == "debian"
    detail = json.loads(tree[b"vulnerability"][b"CVE-2099-0002"])
    assert detail["Severity"] == "HIGH" and detail["VendorSeverity"] == {"debian": 3, "ghsa": 3}
    assert json.loads(tree[b"vulnerability"][b"CVE-2099-0001"])["PublishedDate"] == "2099-01-02T00:00:00Z"


def test_build_writes_a_readable_db_and_go_style_metadata(tmp_path: Path) -> None:
    adv = _advisories({"id": "CVE-2099-0001", "severity": "LOW", "title": "t",
                       "affects": [{"os": "debian 12", "package": "glibc", "fixed_version": "2.36-9"}]})
    out = builder.build_vuln_db(adv, tmp_path / "db", NOW)
    assert bbolt.check((out / "trivy.db").read_bytes()) == builder.vuln_db_tree(adv)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta == {"Version": 2, "UpdatedAt": "2026-05-01T12:00:00.000000Z",
                    "NextUpdate": "2026-05-02T12:00:00.000000Z", "DownloadedAt": "2026-05-01T12:00:00.000000Z"}


def test_java_db_has_the_tables_and_indexes_trivy_queries(tmp_path: Path) -> None:
    out = builder.build_java_db(tmp_path / "java", NOW)
    conn = sqlite3.connect(out / "trivy-java.db")
    try:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        # The query trivy runs to identify a JAR by its SHA-1 must work on it.
        rows = conn.execute("SELECT a.group_id, a.artifact_id, i.version, i.sha1, i.archive_type FROM indices i "
                            "JOIN artifacts a ON a.id = i.artifact_id WHERE i.sha1 = ?", (b"\x00" * 20,)).fetchall()
    finally:
        conn.close()
    assert {"artifacts", "indices", "artifacts_idx", "indices_artifact_idx", "indices_sha1_idx"} <= names
    assert rows == []
    assert json.loads((out / "metadata.json").read_text())["Version"] == 1


def test_pack_is_reproducible_and_holds_the_files(tmp_path: Path) -> None:
    (tmp_path / "trivy.db").write_bytes(b"db")
    (tmp_path / "metadata.json").write_text("{}")
    first = builder.pack(tmp_path, ("trivy.db", "metadata.json"))
    assert first == builder.pack(tmp_path, ("metadata.json", "trivy.db"))
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(first))) as tar:
        assert sorted(tar.getnames()) == ["metadata.json", "trivy.db"]


@pytest.mark.parametrize(("affected", "message"), [
    ({"os": "debian 12", "ecosystem": "maven", "package": "x"}, "exactly one of"),
    ({"os": "ubuntu 22.04", "package": "x"}, "unknown os"),
    ({"ecosystem": "maven", "package": "noversion", "vulnerable_versions": ["<1"]}, "group:artifact"),
    ({"ecosystem": "maven", "package": "g:a"}, "vulnerable_versions"),
    ({"os": "debian 12", "package": "jq", "vulnerable_versions": ["<1"]}, "fixed_version"),
])
def test_bad_advisories_are_reported_with_file_and_field(tmp_path: Path, affected: dict, message: str) -> None:
    path = tmp_path / "advisories.yaml"
    path.write_text(json.dumps({"vulnerabilities": [{"id": "CVE-2099-0001", "severity": "HIGH", "title": "t",
                                                      "affects": [affected]}]}))
    with pytest.raises(ManifestError) as err:
        load_advisories(path, "security/advisories.yaml")
    problem = err.value.problems[0]
    assert problem.file == "security/advisories.yaml"
    assert problem.field.startswith("vulnerabilities.0.affects.0")
    assert message in problem.message


@pytest.mark.parametrize(("entries", "expected"), [
    ([_ONE, _ONE], "CVE-2099-0001 is listed twice"),
    ([_ONE, {**_ONE, "id": "CVE-99"}], "vulnerabilities.1.id"),
    ([{**_ONE, "affects": [{"os": "debian 12", "package": "libc6 (glibc)"}]}], "source package"),
])
def test_duplicate_bad_ids_and_bad_package_names_are_rejected(tmp_path: Path, entries: list, expected: str) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(json.dumps({"vulnerabilities": entries}))
    with pytest.raises(ManifestError, match=re.escape(expected)):
        load_advisories(path)


def test_a_bad_source_package_name_carries_its_line(tmp_path: Path) -> None:
    path = tmp_path / "advisories.yaml"
    path.write_text("vulnerabilities:\n  - id: CVE-2099-0001\n    severity: HIGH\n    title: t\n    affects:\n"
                    "      - os: debian 12\n        package: libc6 (glibc)\n")
    with pytest.raises(ManifestError) as err:
        load_advisories(path, "security/advisories.yaml")
    (problem,) = err.value.problems
    assert (problem.line, problem.field) == (7, "vulnerabilities.0.affects.0.package")
