"""The registry gate in front of a real CNCF distribution registry (htpasswd auth, like the stack's), on ports
of this module's own: ECR's tag immutability, streaming of big blobs in bounded memory, chunked bodies,
keep-alive, and the injected faults the RegistryClient must ride out.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from daemon_support import free_port, stop, wait_ready

from moka_images.adapters import run
from moka_images.adapters.registry import RegistryClient, digest_of
from moka_images.config.settings import Settings
from moka_images.devstack import services, stack
from moka_images.devstack.registry_gate import Faults
from moka_images.devstack.services import Daemon, is_ready
from moka_images.errors import ServiceError
from moka_images.models import Digest, Environment

pytestmark = pytest.mark.integration

USER, PASSWORD = "AWS", "gate-test-token"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
BUILD_TAG = "1.0.0-0123456789-abcdefabcd"
RUN = uuid.uuid4().hex[:8]
BIG = 300 * 1024 * 1024





def rss_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


@dataclass
class Gate:
    """A running gate process: its address, pid, fault file and log."""

    address: str
    pid: int
    faults: Path
    log: Path

    def client(self, **kw: object) -> RegistryClient:
        return RegistryClient(self.address, USER, PASSWORD, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A docker-registry with htpasswd auth on a free loopback port."""
    tmp = tmp_path_factory.mktemp("gate-backend")
    htpasswd = tmp / "htpasswd"
    htpasswd.write_text(run.call(["htpasswd", "-Bbn", USER, PASSWORD], quiet=True).stdout.strip() + "\n")
    address = f"127.0.0.1:{free_port()}"
    config = tmp / "config.yml"
    config.write_text(f"""version: 0.1
log: {{level: warn}}
storage: {{filesystem: {{rootdirectory: {tmp}/data}}, delete: {{enabled: true}}}}
http: {{addr: {address}}}
auth: {{htpasswd: {{realm: gate-test, path: {htpasswd}}}}}
""")
    pid = run.spawn(["docker-registry", "serve", str(config)], tmp / "registry.log")
    wait_ready(f"http://{address}/v2/", pid, tmp / "registry.log")
    yield address
    stop(pid)


@pytest.fixture
def start_gate(backend: str, tmp_path: Path) -> Iterator[Callable[..., Gate]]:
    """Start gates in front of `backend` (or another address); all are stopped after the test."""
    pids: list[int] = []

    def start(to: str = backend) -> Gate:
        address = f"127.0.0.1:{free_port()}"
        gate = Gate(address, 0, tmp_path / f"faults-{len(pids)}.json", tmp_path / f"gate-{len(pids)}.log")
        gate.pid = run.spawn([sys.executable, "-m", "moka_images.devstack.registry_gate", "--listen", address,
                              "--backend", to, "--faults", str(gate.faults)], gate.log)
        pids.append(gate.pid)
        wait_ready(f"http://{address}/v2/", gate.pid, gate.log)
        return gate

    yield start
    for pid in pids:
        stop(pid)


@pytest.fixture
def gate(start_gate: Callable[..., Gate]) -> Gate:
    return start_gate()


def manifest(client: RegistryClient, repo: str, n: int) -> bytes:
    """A small OCI manifest, distinct per `n`, whose config blob is in `repo`."""
    config = client.push_blob(repo, b'{"architecture":"amd64","os":"linux"}')
    config_ref = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": str(config), "size": 37}
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "annotations": {"n": str(n)},
                       "config": config_ref, "layers": []}).encode()


def test_an_immutable_tag_refuses_another_digest_like_ecr_and_takes_the_same_again(gate: Gate,
                                                                                  backend: str) -> None:
    client, repo = gate.client(), f"scratch-gate/immutable-{RUN}"
    first, second = manifest(client, repo, 1), manifest(client, repo, 2)
    client.put_manifest(repo, BUILD_TAG, first, OCI_MANIFEST)
    client.put_manifest(repo, BUILD_TAG, first, OCI_MANIFEST)  # the same digest again: fine, as on ECR

    with pytest.raises(ServiceError) as refused:
        client.put_manifest(repo, BUILD_TAG, second, OCI_MANIFEST)

    assert "HTTP 400" in refused.value.message and "TAG_INVALID" in refused.value.message
    assert f"ImageTagAlreadyExistsException: tag '{BUILD_TAG}' already exists" in refused.value.message
    assert "cannot be overwritten because the repository is immutable" in refused.value.message
    direct = RegistryClient(backend, USER, PASSWORD)
    assert direct.head_manifest(repo, BUILD_TAG) == digest_of(first)
    client.put_manifest(repo, f"{BUILD_TAG}-arm64", first, OCI_MANIFEST)
    with pytest.raises(ServiceError, match="TAG_INVALID"):
        client.put_manifest(repo, f"{BUILD_TAG}-arm64", second, OCI_MANIFEST)


def test_rolling_and_cosign_tags_move_and_digests_pass(gate: Gate) -> None:
    client, repo = gate.client(), f"scratch-gate/mutable-{RUN}"
    first, second = manifest(client, repo, 1), manifest(client, repo, 2)
    cosign = "sha256-" + "c" * 64
    tags = ["latest", "1.0", "1.0.0", "1.1.0-rc.1", f"{cosign}.sig", f"{cosign}.att"]
    for tag in tags:
        client.put_manifest(repo, tag, first, OCI_MANIFEST)
        client.put_manifest(repo, tag, second, OCI_MANIFEST)
        assert client.head_manifest(repo, tag) == digest_of(second)
    assert client.put_manifest(repo, str(digest_of(first)), first, OCI_MANIFEST) == digest_of(first)


def test_racing_pushes_of_one_new_tag_end_with_one_digest(gate: Gate) -> None:
    repo = f"scratch-gate/race-{RUN}"
    bodies = [manifest(gate.client(), repo, n) for n in range(8)]
    won: list[Digest] = []
    refused: list[str] = []
    barrier = threading.Barrier(len(bodies))

    def push(body: bytes) -> None:
        client = gate.client()
        barrier.wait()
        try:
            won.append(client.put_manifest(repo, BUILD_TAG, body, OCI_MANIFEST))
        except ServiceError as exc:
            refused.append(exc.message)

    threads = [threading.Thread(target=push, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == len(bodies) - 1
    assert all("TAG_INVALID" in r for r in refused)
    assert gate.client().head_manifest(repo, BUILD_TAG) == won[0]


def test_credentials_are_the_registry_s_and_keep_alive_holds(gate: Gate) -> None:
    with pytest.raises(ServiceError, match="not authorized"):
        RegistryClient(gate.address).ping()
    conn = http.client.HTTPConnection(*gate.address.split(":"))
    auth = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    conn.request("GET", "/v2/", headers=auth)
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    conn.request("GET", "/v2/", headers=auth)
    second = conn.getresponse()
    second.read()
    assert (first.status, second.status) == (200, 200) and conn.sock is sock
    conn.close()


def test_a_chunked_blob_upload_is_reframed(gate: Gate) -> None:
    repo = f"scratch-gate/chunked-{RUN}"
    data = os.urandom(5 * 1024 * 1024 + 17)
    session = requests.Session()
    session.trust_env = False
    session.auth = (USER, PASSWORD)
    base = f"http://{gate.address}"
    start = session.post(f"{base}/v2/{repo}/blobs/uploads/")
    assert start.status_code == 202
    pieces = (data[i:i + 300_000] for i in range(0, len(data), 300_000))  # a generator: sent chunked
    patch = session.patch(start.headers["Location"] if start.headers["Location"].startswith("http")
                          else base + start.headers["Location"], data=pieces)
    assert patch.status_code == 202
    location = patch.headers["Location"]
    location = location if location.startswith("http") else base + location
    sep = "&" if "?" in location else "?"
    done = session.put(f"{location}{sep}digest={digest_of(data)}")
    assert done.status_code == 201, done.text
    assert gate.client().get_blob(repo, digest_of(data)) == data


def test_a_cross_repository_mount_passes_through(gate: Gate) -> None:
    """What the copy engine's mounts rely on: the POST with ?mount=&from= reaches the registry with its query and
    its 201 (mounted) or 202 (an upload session instead) comes back as the registry said it."""
    client, data = gate.client(), os.urandom(64 * 1024)
    src, dst = f"scratch-gate/mount-src-{RUN}", f"scratch-gate/mount-dst-{RUN}"
    digest = client.push_blob(src, data)
    session = requests.Session()
    session.trust_env = False
    session.auth = (USER, PASSWORD)
    url = f"http://{gate.address}/v2/{dst}/blobs/uploads/"
    mounted = session.post(url, params={"mount": str(digest), "from": src})
    assert mounted.status_code == 201, mounted.text
    assert mounted.headers["Docker-Content-Digest"] == str(digest)
    assert mounted.headers["Location"].endswith(f"/v2/{dst}/blobs/{digest}")
    assert client.get_blob(dst, digest) == data
    assert client.mount_blob(f"{dst}-2", digest, src) is True
    assert client.mount_blob(f"{dst}-3", digest, f"scratch-gate/nothing-{RUN}") is False  # 202: cancelled
    assert not client.blob_exists(f"{dst}-3", digest)


def test_a_dead_backend_is_a_502(start_gate: Callable[..., Gate]) -> None:
    gate = start_gate(f"127.0.0.1:{free_port()}")
    resp = requests.get(f"http://{gate.address}/v2/", timeout=10)
    assert resp.status_code == 502 and resp.json()["errors"][0]["code"] == "UNAVAILABLE"


def test_the_client_rides_out_500s_and_429s(gate: Gate) -> None:
    repo = f"scratch-gate/faults-{RUN}"
    Faults(error_rate=0.2, throttle_rate=0.15, retry_after=0, seed=11).write(gate.faults)
    client = gate.client(retries=6)
    statuses: list[int] = []
    client._session.hooks["response"].append(lambda r, *a, **k: statuses.append(r.status_code))
    blobs = [os.urandom(50_000 + n) for n in range(8)]

    pushed = [client.push_blob(repo, b) for b in blobs]
    body = manifest(client, repo, 1)
    client.put_manifest(repo, BUILD_TAG, body, OCI_MANIFEST)

    assert statuses.count(500) >= 3 and statuses.count(429) >= 2, statuses
    gate.faults.unlink()
    clean = gate.client()
    assert [clean.get_blob(repo, d) for d in pushed] == blobs
    assert clean.head_manifest(repo, BUILD_TAG) == digest_of(body)


def test_a_push_that_dies_mid_blob_converges_on_a_rerun(gate: Gate) -> None:
    repo = f"scratch-gate/dies-{RUN}"
    Faults(die_after_bytes=3 * 1024 * 1024).write(gate.faults)
    data = os.urandom(8 * 1024 * 1024)
    client = gate.client()
    try:
        client.push_blob(repo, data)
    except ServiceError as exc:  # the registry refuses the cut upload session (BLOB_UPLOAD_INVALID)
        assert "BLOB_UPLOAD" in exc.message
        client.push_blob(repo, data)
    assert "push dies after 3145728 bytes (drop)" in gate.log.read_text()
    assert client.get_blob(repo, digest_of(data)) == data


def test_a_gate_that_exits_mid_push_is_a_dead_registry(start_gate: Callable[..., Gate],
                                                       tmp_path: Path) -> None:
    gate = start_gate()
    Faults(die_after_bytes=1024 * 1024, die="exit").write(gate.faults)
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(4 * 1024 * 1024))
    with blob.open("rb") as f, pytest.raises(ServiceError, match="not reachable"):
        gate.client(retries=1).push_blob(f"scratch-gate/exit-{RUN}", f, digest_of(blob.read_bytes()),
                                         blob.stat().st_size)
    _, status = os.waitpid(gate.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3


def test_faults_are_checked() -> None:
    with pytest.raises(ValueError):
        Faults(error_rate=0.8, throttle_rate=0.5)
    with pytest.raises(ValueError):
        Faults(die="explode")


def test_a_300_mib_blob_streams_through_in_bounded_memory(gate: Gate, backend: str, tmp_path: Path) -> None:
    path = tmp_path / "big"
    sha = hashlib.sha256()
    with path.open("wb") as f:
        for _ in range(BIG // (1 << 20)):
            piece = os.urandom(1 << 20)
            sha.update(piece)
            f.write(piece)
    digest = Digest("sha256:" + sha.hexdigest())
    before = rss_mib(gate.pid, "VmRSS")
    timings = {}
    for label, client in (("direct", RegistryClient(backend, USER, PASSWORD)), ("gate", gate.client())):
        repo = f"scratch-gate/big-{label}-{RUN}"
        with path.open("rb") as f:
            t = time.monotonic()
            client.push_blob(repo, f, digest, BIG)
            push = time.monotonic() - t
        t, pulled = time.monotonic(), hashlib.sha256()
        with client.open_blob(repo, digest) as resp:
            for piece in resp.iter_content(1 << 20):
                pulled.update(piece)
        timings[label] = (push, time.monotonic() - t)
        assert "sha256:" + pulled.hexdigest() == digest.value
    peak = rss_mib(gate.pid, "VmHWM")
    print(f"\n300 MiB blob: direct push {timings['direct'][0]:.2f}s pull {timings['direct'][1]:.2f}s; "
          f"through the gate push {timings['gate'][0]:.2f}s pull {timings['gate'][1]:.2f}s; "
          f"gate RSS {before:.0f} MiB before, peak {peak:.0f} MiB")
    assert peak - before < 48, "the gate buffered the blob"
    assert sum(timings["gate"]) < 3 * sum(timings["direct"]) + 5


def test_the_stack_runs_a_gate_in_front_of_each_environment_s_registry(settings: Settings,
                                                                      tmp_path: Path) -> None:
    """`dev up`'s wiring on a home and ports of this test's own: the registry moves to port + 1000, the gate
    takes the environment's address, an old registry still on it is replaced, and `dev down` stops both."""
    port = free_port()
    while not 1024 < port < 64000 or not _free(port + stack.GATE_BACKEND_OFFSET):
        port = free_port()
    address = f"127.0.0.1:{port}"
    envs = dict(settings.environments)
    envs[Environment.TEST] = envs[Environment.TEST].model_copy(update={"registry": address})
    local = settings.model_copy(update={"home": tmp_path, "environments": envs})
    rd = stack.run_dir(local)
    htpasswd = tmp_path / "htpasswd"
    stack.write_htpasswd(htpasswd, USER, PASSWORD)
    try:
        services.ensure(stack.registry_daemon(local, "test", address, htpasswd), rd)  # as before the gate

        backend = stack.registry_daemon(local, "test", stack.backend_address(address), htpasswd)
        assert backend.ready_url == f"http://127.0.0.1:{port + 1000}/v2/"
        assert stack.ensure_ours(backend, rd) == "started"
        assert stack.ensure_ours(stack.gate_daemon(local, "test", address), rd) == "started"

        client = RegistryClient(address, USER, PASSWORD)
        repo = f"scratch-gate/stack-{RUN}"
        first, second = manifest(client, repo, 1), manifest(client, repo, 2)
        client.put_manifest(repo, BUILD_TAG, first, OCI_MANIFEST)
        with pytest.raises(ServiceError, match="TAG_INVALID"):
            client.put_manifest(repo, BUILD_TAG, second, OCI_MANIFEST)
        Faults(error_rate=1.0, match="^GET /v2/$").write(stack.gate_faults(local, "test"))
        assert requests.get(f"http://{address}/v2/", timeout=10).status_code == 500
        assert stack.down(local) == ["gate-test", "registry-test"]
    finally:
        stack.down(local)  # a failure above must not leave daemons behind
    assert not is_ready(Daemon("gate", [], ready_url=f"http://{address}/v2/"))


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
