"""Real trivy against real images in the local registries, with the DB we build and push to the mirror.

Needs the local stack (`moka-images dev up`: docker engine, registries, moto, the seeded OS base). Test images
and DBs live under `scratch-scan/` repositories so that nothing here touches what the pipeline uses, except
test_cli_* which runs `db mirror` as a user would (idempotent: unchanged advisories keep the DB digest).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from ci_support import unavailable

from moka_images.adapters import buildx, run
from moka_images.config.policies import PolicyException, load_policy
from moka_images.config.settings import Settings, TrivySettings, load_settings
from moka_images.errors import MokaError
from moka_images.findings import Severity
from moka_images.models import Environment, ImageRef
from moka_images.plan.verdict import judge
from moka_images.stages import images, registries
from moka_images.stages.verify import dbmirror, scan
from moka_images.trivydb import builder
from moka_images.trivydb.advisories import AdvisoryFile, load_advisories

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEST = Environment.TEST
TRIVY = str(Path(sys.executable).parent / "trivy")
SECRET_PATH = "/opt/app/conf/credentials"


def _scratch_settings(home: Path, suffix: str = "") -> Settings:
    base = load_settings(root=ROOT, profile="local")
    return base.model_copy(update={"home": home, "trivy": TrivySettings(
        db_repository=f"scratch-scan/trivy-db{suffix}", java_db_repository=f"scratch-scan/trivy-java-db{suffix}")})


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    found = _scratch_settings(tmp_path_factory.mktemp("home"))
    try:
        registries.mirror(found).ping()
        registries.client(found, TEST).ping()
    except MokaError as exc:
        unavailable(f"local stack not up ({exc.message}): run `moka-images dev up`")
    if registries.mirror(found).head_manifest(found.os_base.repository, found.os_base.tag) is None:
        unavailable("the OS base is not seeded in the mirror: run `moka-images dev up`")
    registries.login_tools(found, TEST)
    return found


@pytest.fixture(scope="module")
def db(settings: Settings) -> tuple:
    """The repository's advisories, built and pushed to scratch DB repositories in the mirror."""
    return dbmirror.mirror_databases(settings, registries.mirror(settings))


def _build(settings: Settings, name: str, dockerfile: str, files: dict[str, str], tmp: Path) -> ImageRef:
    """Build and push a multi-platform test image to the test registry; the tag follows the content."""
    tag = "t" + hashlib.sha256((dockerfile + json.dumps(files, sort_keys=True)).encode()).hexdigest()[:16]
    repo, registry = f"scratch-scan/{name}", settings.env(TEST).registry
    client = registries.client(settings, TEST)
    found = client.head_manifest(repo, tag)
    if found is None:
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "Dockerfile").write_text(dockerfile)
        for rel, text in files.items():
            (tmp / rel).write_text(text)
        per_arch = [ImageRef(registry, repo, digest=buildx.build_platform(
            tmp, platform, ImageRef(registry, repo, f"{tag}-{platform.arch}"))) for platform in settings.platform_list()]
        found = images.write_index(client, repo, tag, [ref.digest for ref in per_arch])
    return ImageRef(registry, repo, tag, found)


def _base(settings: Settings) -> str:
    digest = registries.mirror(settings).head_manifest(settings.os_base.repository, settings.os_base.tag)
    return f"{settings.mirror}/{settings.os_base.repository}@{digest}"


@pytest.fixture(scope="module")
def jq_image(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> ImageRef:
    """The OS base plus Debian's jq, which the local DB marks CRITICAL (CVE-2099-0001)."""
    dockerfile = (f"FROM {_base(settings)}\n"
                  "RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends jq \\\n"
                  " && rm -rf /var/lib/apt/lists/*\n")
    return _build(settings, "jq-critical", dockerfile, {}, tmp_path_factory.mktemp("jq"))


def _planted_credentials() -> str:
    # Made at run time so that the repository itself holds nothing that looks like a key.
    seed = hashlib.sha256(b"moka-images planted secret").digest()
    key_id = "AKIA" + base64.b32encode(seed).decode()[:16]
    secret = base64.b64encode(hashlib.sha256(seed).digest() + seed).decode().replace("+", "x")[:40]
    return f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"


@pytest.fixture(scope="module")
def secret_image(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> ImageRef:
    """The OS base with AWS credentials left in a file."""
    dockerfile = f"FROM {_base(settings)}\nCOPY credentials {SECRET_PATH}\n"
    return _build(settings, "planted-secret", dockerfile, {"credentials": _planted_credentials()},
                  tmp_path_factory.mktemp("secret"))


def _exceptions(expires: date) -> tuple[PolicyException, ...]:
    return (PolicyException(id="CVE-2099-0001", image="jq-critical", reason="integration test",
                            owner="scan-tests@example.com", expires=expires),)


def test_trivy_reads_a_multilevel_local_db(tmp_path: Path) -> None:
    """The known-good decoder: trivy itself, on a DB big enough for branch pages, overflow pages and inline buckets."""
    advisories = load_advisories(ROOT / "security/advisories.yaml")
    filler = [{"id": f"CVE-2098-{i:06d}", "severity": "LOW", "title": "filler",
               "description": "long " * (1500 if i == 7 else 1),
               "affects": [{"os": "debian 12", "package": f"pkg{i % 2500}", "fixed_version": "9"}]}
              for i in range(40000)]
    big = AdvisoryFile.model_validate({"vulnerabilities": [v.model_dump() for v in advisories.vulnerabilities] + filler})
    cache = tmp_path / "cache"
    now = datetime.now(UTC)
    builder.build_vuln_db(big, cache / "db", now)
    builder.build_java_db(cache / "java-db", now)
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "var/lib/dpkg").mkdir(parents=True)
    (rootfs / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n')
    (rootfs / "etc/debian_version").write_text("12.10\n")
    (rootfs / "var/lib/dpkg/status").write_text(
        "Package: jq\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.6-2.1+deb12u3\n"
        "Description: jq\n\nPackage: pkg7\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n"
        "Description: filler\n\nPackage: pkg2499\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 1\nDescription: filler\n\n")
    out = run.call([TRIVY, "rootfs", "--cache-dir", str(cache), "--skip-db-update", "--skip-java-db-update",
                    "--skip-version-check", "--disable-telemetry", "--offline-scan", "--scanners", "vuln",
                    "--format", "json", "--quiet", str(rootfs)])
    found = {(v["VulnerabilityID"], v["PkgName"], v["Severity"])
             for r in json.loads(out.stdout)["Results"] for v in r.get("Vulnerabilities") or []}
    expected_filler = {(f"CVE-2098-{i:06d}", f"pkg{i % 2500}", "LOW") for i in range(40000) if i % 2500 in (7, 2499)}
    assert found == {("CVE-2099-0001", "jq", "CRITICAL"), ("CVE-2099-0002", "jq", "HIGH"),
                     ("CVE-2099-0004", "jq", "LOW")} | expected_filler
    assert (cache / "db" / "trivy.db").stat().st_size > 1000 * 4096  # well past one branch level


def test_critical_cve_blocks_then_an_exception_waives_it_until_it_expires(
        settings: Settings, db: tuple, jq_image: ImageRef) -> None:
    result = scan.scan_image(settings, registries.client(settings, TEST), jq_image, "jq-critical")
    assert {str(r.platform) for r in result.reports} == set(settings.platforms)
    policy = load_policy(settings.policy_path(TEST))
    today = date.today()

    blocked = judge(result.reports, policy, (), environment="test", image="jq-critical", today=today)
    assert not blocked.allowed
    critical = [f for f in blocked.blocking if f.id == "CVE-2099-0001" and f.package == "jq"]
    assert {str(f.platform) for f in critical} == set(settings.platforms)
    assert all(f.severity == Severity.CRITICAL and f.fixed_version == "1.7.1-99"
               and f.installed_version.startswith("1.6-2.1") for f in critical)
    assert "CVE-2099-0002" not in {f.id for f in blocked.blocking}  # HIGH without a fix is allowed into test

    exceptions = _exceptions(today + timedelta(days=30))
    waived = judge(result.reports, policy, exceptions, environment="test", image="jq-critical", today=today)
    assert waived.allowed
    assert {w.exception for w in waived.waived} == set(exceptions)

    later = judge(result.reports, policy, exceptions, environment="test", image="jq-critical",
                  today=today + timedelta(days=31))
    assert not later.allowed
    assert "CVE-2099-0001" in {f.id for f in later.blocking}
    assert [e.exception for e in later.expired] == list(exceptions)

    for platform, sbom in result.sboms:
        doc = json.loads(sbom.read_text())
        assert doc["bomFormat"] == "CycloneDX"
        assert "jq" in {c["name"] for c in doc["components"]}, platform


def test_a_planted_secret_is_found_and_blocks(settings: Settings, db: tuple, secret_image: ImageRef) -> None:
    result = scan.scan_image(settings, registries.client(settings, TEST), secret_image, "planted-secret")
    for report in result.reports:
        assert {s.path for s in report.secrets} == {SECRET_PATH}
        assert "aws-secret-access-key" in {s.rule_id for s in report.secrets}
    verdict = scan.judge_scan(settings, result, TEST, date.today())
    assert not verdict.allowed
    assert {(f.kind, f.package) for f in verdict.blocking} == {("secret", SECRET_PATH)}
    assert {str(f.platform) for f in verdict.blocking} == set(settings.platforms)


def test_same_digest_same_db_does_no_work_and_a_new_db_rescans(
        settings: Settings, jq_image: ImageRef, tmp_path: Path) -> None:
    own = _scratch_settings(settings.home, "-rescan")
    mirror, client = registries.mirror(own), registries.client(own, TEST)
    dbmirror.mirror_databases(own, mirror)
    first = scan.scan_image(own, client, jq_image, "jq-critical")
    stamps = [(d / "scan.json").stat().st_mtime_ns for d in (s.parent for _, s in first.sboms)]
    again = scan.scan_image(own, client, jq_image, "jq-critical")
    assert set(again.from_cache) == {r.platform for r in again.reports}
    assert again.reports == first.reports
    assert stamps == [(s.parent / "scan.json").stat().st_mtime_ns for _, s in again.sboms]

    extra = tmp_path / "advisories.yaml"
    extra.write_text((ROOT / "security/advisories.yaml").read_text()
                     + "  - id: CVE-2099-0999\n    severity: MEDIUM\n    title: added after the first scan\n"
                     + '    affects: [{os: debian 12, package: jq, fixed_version: "1.7.1-99"}]\n')
    dbmirror.mirror_databases(own, mirror, advisories=extra)
    rescanned = scan.scan_image(own, client, jq_image, "jq-critical")
    assert rescanned.from_cache == ()
    assert all("CVE-2099-0999" in {v.id for v in r.vulnerabilities} for r in rescanned.reports)
    assert rescanned.reports[0].db.vuln_digest != first.reports[0].db.vuln_digest


def test_cli_scan_exits_non_zero_and_names_the_cve(settings: Settings, jq_image: ImageRef, tmp_path: Path) -> None:
    env = {"MOKA_HOME": str(tmp_path), "MOKA_REPOSITORY_PREFIX": "scratch-scan", "MOKA_ROOT": str(ROOT)}
    cli = [sys.executable, "-m", "moka_images.cli"]
    run.call([*cli, "db", "mirror"], env=env)
    done = run.call([*cli, "scan", f"jq-critical:{jq_image.tag}", "--env", "test", "--json"], env=env, check=False)
    assert done.returncode == 7, done.stderr[-2000:]
    predicate = json.loads(done.stdout)
    assert predicate["verdict"]["allowed"] is False
    assert "CVE-2099-0001" in {f["id"] for f in predicate["verdict"]["blocking"]}
    assert predicate["image"].endswith(f"@{jq_image.digest}")
    assert {p["platform"] for p in predicate["platforms"]} == set(settings.platforms)
    table = run.call([*cli, "scan", f"jq-critical:{jq_image.tag}", "--env", "test"], env=env, check=False)
    assert table.returncode == 7 and "CVE-2099-0001" in table.stdout and "BLOCKED" in table.stdout


# ---- no connection outside loopback -----------------------------------------------------------

_DRIVER = """
import json, sys
from datetime import date
from pathlib import Path
from moka_images.adapters import run
from moka_images.adapters.registry import RegistryClient
from moka_images.config.policies import load_policy
from moka_images.config.settings import TrivySettings, load_settings
from moka_images.models import Environment, ImageRef
from moka_images.plan.verdict import judge
from moka_images.stages.verify import dbmirror, scan

registry, layout, repo, home = sys.argv[1:5]
run.call(["skopeo", "copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:img", f"docker://{registry}/{repo}"])
settings = load_settings().model_copy(update={"mirror": registry, "home": Path(home),
    "trivy": TrivySettings(db_repository="scratch-scan/trivy-db", java_db_repository="scratch-scan/trivy-java-db")})
client = RegistryClient(registry)
dbmirror.mirror_databases(settings, client)
ref = ImageRef(registry, repo).with_digest(client.head_manifest(repo, "latest"))
result = scan.scan_image(settings, client, ref, "jq-critical", mirror=client)
verdict = judge(result.reports, load_policy(settings.policy_path(Environment.TEST)), (),
                environment="test", image="jq-critical", today=date.today())
print(json.dumps({"predicate": scan.scan_predicate(result, verdict), "cached": [str(p) for p in result.from_cache]}))
"""


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0 or not shutil.which("ip"):
        unavailable("needs root and iproute2 to make a network namespace")
    name = f"moka-scan-{os.getpid()}"
    run.call(["ip", "netns", "add", name])
    try:
        run.call(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"])
        yield name
    finally:
        run.call(["ip", "netns", "del", name], check=False)


def test_a_scan_opens_no_connection_outside_loopback(
        settings: Settings, jq_image: ImageRef, netns: str, tmp_path: Path) -> None:
    in_ns = ["ip", "netns", "exec", netns]
    # The namespace really is cut off: only `lo`, and no route to anything else.
    links = run.call([*in_ns, "ip", "-o", "link"]).stdout.strip().splitlines()
    assert [line.split(":")[1].strip() for line in links] == ["lo"]
    assert run.call([*in_ns, "ip", "route", "get", "198.51.100.1"], check=False).returncode != 0
    # ... so trivy left to its defaults (upstream DB registries) fails there: the test cannot pass by accident.
    upstream = run.call([*in_ns, TRIVY, "image", "--download-db-only", "--cache-dir", str(tmp_path / "probe"),
                         "--skip-version-check", "--disable-telemetry", "--quiet"], check=False, timeout=300)
    assert upstream.returncode != 0 and "network is unreachable" in upstream.stderr

    # The image leaves the stack as files; inside, a registry on the namespace's own loopback serves it.
    creds = registries.credentials(settings, TEST)
    layout = tmp_path / "layout"
    run.call(["skopeo", "copy", "--all", "--src-tls-verify=false", "--src-creds", f"{creds.username}:{creds.password}",
              f"docker://{jq_image.name}@{jq_image.digest}", f"oci:{layout}:img"])
    address = "127.0.0.1:15991"
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}"
                      f"\nhttp:\n  addr: {address}\n")
    registry = subprocess.Popen([*in_ns, "docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    probe = f"import socket; socket.create_connection(('127.0.0.1', {address.split(':')[1]}), 1)"
    try:
        for _ in range(50):
            if run.call([*in_ns, sys.executable, "-c", probe], check=False, quiet=True).returncode == 0:
                break
            time.sleep(0.2)
        home = tmp_path / "home"  # empty: the DBs have to be fetched, inside the namespace
        driver = tmp_path / "driver.py"
        driver.write_text(_DRIVER)
        done = run.call([*in_ns, sys.executable, str(driver), address, str(layout), "scratch-scan/jq-critical",
                         str(home)], env={"MOKA_ROOT": str(ROOT)}, timeout=900)
    finally:
        registry.terminate()
        registry.wait(timeout=30)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["cached"] == []
    assert (home / "cache" / "trivy" / "db" / "trivy.db").exists()
    verdict = result["predicate"]["verdict"]
    assert verdict["allowed"] is False
    assert "CVE-2099-0001" in {f["id"] for f in verdict["blocking"]}
    assert {p["platform"] for p in result["predicate"]["platforms"]} == set(settings.platforms)
