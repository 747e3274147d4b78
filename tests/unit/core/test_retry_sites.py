"""How the registry client, the blob copy and the cosign caller retry, against fakes (no network, no process):
the attempts made, the waits slept, Retry-After honoured, and what is raised or returned when tries run out."""

from __future__ import annotations

import io
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from moka_images.adapters import cosign, run
from moka_images.adapters.copy import Blob, CopyStats, copy_blob
from moka_images.adapters.registry import RegistryClient, digest_of
from moka_images.errors import CommandFailed, ServiceError
from moka_images.models import Digest

BLOB = b"some layer bytes"


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait, recorded instead of slept; jitter pinned to its lowest factor (0.5)."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setattr(random, "random", lambda: 0.0)
    return slept


def answer(status: int, *, body: bytes = b"", **headers: str) -> requests.Response:
    resp = requests.Response()
    resp.status_code, resp._content = status, body
    resp.headers.update(headers)
    return resp


class Session:
    """A stand-in requests.Session answering from a script (a response or an exception per request)."""

    def __init__(self, *script: requests.Response | Exception, token: str | None = None) -> None:
        self.script, self.token = list(script), token
        self.sent: list[tuple[str, str, dict[str, str], bytes | None]] = []

    def request(self, method: str, url: str, headers: dict[str, str] | None = None, **kw: Any) -> requests.Response:
        data = kw.get("data")
        body = data if isinstance(data, bytes | None) else b"".join(data)
        self.sent.append((method, url, dict(headers or {}), body))
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    def get(self, url: str, **kw: Any) -> requests.Response:
        return answer(200 if self.token else 401, body=b'{"token": "%s"}' % (self.token or "").encode())


def client(session: Session, retries: int = 5) -> RegistryClient:
    c = RegistryClient("registry.example", "user", "secret", retries=retries)
    c._session = session  # type: ignore[assignment]
    return c


# ---- the registry client: every request ----------------------------------------------------------------


def test_throttling_and_server_errors_are_retried_with_jittered_doubling_waits(sleeps: list[float]) -> None:
    session = Session(answer(500), answer(503), answer(502), answer(200))
    client(session).ping()
    assert len(session.sent) == 4
    assert sleeps == [0.125, 0.25, 0.5]  # 0.25 s doubling, times the jitter factor (0.5 here)


def test_retry_after_in_seconds_is_honoured_and_a_date_is_not(sleeps: list[float]) -> None:
    session = Session(answer(429, **{"Retry-After": "3"}), answer(503, **{"Retry-After": "Wed, 21 Oct 2015"}),
                      answer(200))
    client(session).ping()
    assert sleeps == [1.5, 0.25]


def test_waits_are_capped_and_the_last_answer_is_returned_when_tries_run_out(sleeps: list[float]) -> None:
    session = Session(*[answer(502)] * 8)
    with pytest.raises(ServiceError, match="log in failed with HTTP 502"):
        client(session, retries=7).ping()
    assert len(session.sent) == 8 and not session.script
    assert sleeps == [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 4.0]


def test_other_client_errors_are_not_retried(sleeps: list[float]) -> None:
    session = Session(answer(404))
    assert client(session).list_tags("a/b") == []
    assert len(session.sent) == 1 and sleeps == []


def test_a_registry_that_does_not_answer_is_retried_then_reported(sleeps: list[float]) -> None:
    session = Session(requests.ConnectionError("refused"), answer(200))
    client(session).ping()
    assert sleeps == [0.125]
    session = Session(*[requests.ConnectionError("refused")] * 3)
    with pytest.raises(ServiceError, match="registry registry.example is not reachable: ConnectionError") as raised:
        client(session, retries=2).ping()
    assert isinstance(raised.value.__cause__, requests.ConnectionError)
    assert len(session.sent) == 3 and sleeps == [0.125, 0.125, 0.25]


def test_a_body_that_cannot_be_replayed_is_sent_once(sleeps: list[float]) -> None:
    session = Session(answer(500))
    resp = client(session)._request("PUT", "/v2/a/blobs/x", data=iter([b"chunk"]))
    assert resp.status_code == 500 and len(session.sent) == 1
    session = Session(requests.ConnectionError("reset"))
    with pytest.raises(ServiceError, match="not reachable"):
        client(session)._request("PUT", "/v2/a/blobs/x", data=iter([b"chunk"]))
    assert sleeps == []


def test_retry_false_is_one_attempt(sleeps: list[float]) -> None:
    session = Session(answer(503), answer(200))
    assert client(session)._request("GET", "/v2/", retry=False).status_code == 503
    assert len(session.sent) == 1 and sleeps == []


def test_a_bearer_challenge_logs_in_and_sends_again_at_once(sleeps: list[float]) -> None:
    challenge = 'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull"'
    session = Session(answer(401, **{"WWW-Authenticate": challenge}), answer(200, body=b'{"tags": ["v1"]}'),
                      token="t0ken")
    assert client(session).list_tags("a") == ["v1"]
    first, second = session.sent
    assert first[2]["Authorization"].startswith("Basic ") and second[2]["Authorization"] == "Bearer t0ken"
    assert not any(sleeps)


def test_a_login_uses_up_an_attempt(sleeps: list[float]) -> None:
    challenge = 'Bearer realm="https://auth.example/token",service="registry.example"'
    session = Session(answer(401, **{"WWW-Authenticate": challenge}), answer(200), token="t0ken")
    assert client(session)._request("GET", "/v2/", retry=False).status_code == 401
    assert len(session.sent) == 1


# ---- the registry client: blob uploads ------------------------------------------------------------------


def upload_script(*puts: requests.Response | Exception) -> list[requests.Response | Exception]:
    """HEAD (absent), then per attempt: POST (an upload session) and the PUT's answer."""
    script: list[requests.Response | Exception] = [answer(404)]
    for n, put in enumerate(puts):
        script += [answer(202, Location=f"/v2/a/blobs/uploads/{n}?state=s"), put]
    return script


def puts(session: Session) -> list[tuple[str, bytes | None]]:
    return [(url, body) for method, url, _, body in session.sent if method == "PUT"]


def test_a_failed_upload_starts_a_new_session(sleeps: list[float]) -> None:
    session = Session(*upload_script(answer(500), answer(404), requests.ConnectionError("reset"), answer(201)))
    c = client(session)
    assert c.push_blob("a", BLOB) == digest_of(BLOB)
    assert [url.split("?")[0] for url, _ in puts(session)] == [f"https://registry.example/v2/a/blobs/uploads/{n}"
                                                               for n in range(4)]
    assert sleeps == [0.125, 0.25, 0.5] and c.bytes_sent == len(BLOB)


def test_an_upload_honours_retry_after(sleeps: list[float]) -> None:
    session = Session(*upload_script(answer(429, **{"Retry-After": "4"}), answer(201)))
    client(session).push_blob("a", BLOB)
    assert sleeps == [2.0]


def test_an_upload_refused_for_good_is_not_retried(sleeps: list[float]) -> None:
    session = Session(*upload_script(answer(400)))
    with pytest.raises(ServiceError, match="upload blob .* failed with HTTP 400"):
        client(session).push_blob("a", BLOB)
    assert sleeps == [] and not session.script


def test_uploads_give_up_after_the_last_try(sleeps: list[float]) -> None:
    session = Session(*upload_script(*[answer(503)] * 3))
    with pytest.raises(ServiceError, match="failed with HTTP 503"):
        client(session, retries=2).push_blob("a", BLOB)
    assert len(puts(session)) == 3 and sleeps == [0.125, 0.25]
    session = Session(*upload_script(*[requests.ConnectionError("reset")] * 3))
    with pytest.raises(ServiceError, match="not reachable"):
        client(session, retries=2).push_blob("a", BLOB)
    assert len(puts(session)) == 3


def test_a_failed_start_of_an_upload_is_not_retried_by_the_upload(sleeps: list[float]) -> None:
    session = Session(answer(404), answer(403))
    with pytest.raises(ServiceError, match="forbidden to start upload"):
        client(session).push_blob("a", BLOB)
    assert sleeps == [] and not session.script


def test_a_seekable_stream_is_replayed_from_where_it_started(sleeps: list[float]) -> None:
    stream = io.BytesIO(b"header" + BLOB)
    stream.seek(6)
    session = Session(*upload_script(answer(500), answer(201)))
    client(session).push_blob("a", stream, digest_of(BLOB), len(BLOB))
    assert [body for _, body in puts(session)] == [BLOB, BLOB]


class OneWay(io.RawIOBase):
    """A stream that cannot seek, like a response body being read."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self.data.read(size)


def test_a_stream_that_cannot_seek_is_sent_once(sleeps: list[float]) -> None:
    session = Session(*upload_script(answer(500)))
    with pytest.raises(ServiceError, match="failed with HTTP 500"):
        client(session).push_blob("a", OneWay(BLOB), digest_of(BLOB), len(BLOB))  # type: ignore[arg-type]
    assert sleeps == []
    session = Session(*upload_script(requests.ConnectionError("reset")))
    with pytest.raises(ServiceError, match="not reachable"):
        client(session).push_blob("a", OneWay(BLOB), digest_of(BLOB), len(BLOB))  # type: ignore[arg-type]


# ---- the blob copy --------------------------------------------------------------------------------------


class Source:
    registry = "src.example"

    @contextmanager
    def open_blob(self, repository: str, digest: Digest) -> Iterator[Any]:
        yield type("Resp", (), {"raw": io.BytesIO(BLOB)})()


class Target:
    registry = "dst.example"

    def __init__(self, *failures: Exception) -> None:
        self.failures, self.pushes = list(failures), 0

    def blob_exists(self, repository: str, digest: Digest) -> bool:
        return False

    def push_blob(self, repository: str, data: Any, digest: Digest, size: int) -> Digest:
        self.pushes += 1
        if self.failures:
            raise self.failures.pop(0)
        return digest


def copy(target: Target) -> CopyStats:
    stats = CopyStats()
    copy_blob(Source(), "a", target, "a", Blob(digest_of(BLOB), len(BLOB)), stats)  # type: ignore[arg-type]
    return stats


def test_a_blob_copy_is_retried_whole_and_each_retry_is_logged(sleeps: list[float],
                                                               warnings: list[tuple[str, dict[str, Any]]]) -> None:
    target = Target(ServiceError("HTTP 500"), requests.ConnectionError("reset"))
    stats = copy(target)
    assert target.pushes == 3 and stats.blobs_copied == 1 and stats.bytes_copied == len(BLOB)
    assert sleeps == [0.5, 1.0]
    short = digest_of(BLOB).short
    assert warnings == [(f"blob {short}: ServiceError; retrying", {"attempt": 1}),
                        (f"blob {short}: ConnectionError; retrying", {"attempt": 2})]


def test_a_blob_copy_gives_up_after_four_tries(sleeps: list[float],
                                               warnings: list[tuple[str, dict[str, Any]]]) -> None:
    cut = requests.exceptions.ChunkedEncodingError("cut")
    target = Target(*[cut] * 4)
    with pytest.raises(ServiceError, match=r"copying blob .* to dst.example/a failed 4 times: cut") as raised:
        copy(target)
    assert raised.value.hint == "run the promotion again; it resumes" and raised.value.__cause__ is cut
    assert target.pushes == 4 and sleeps == [0.5, 1.0, 2.0] and len(warnings) == 3


def test_a_blob_copy_does_not_retry_other_errors(sleeps: list[float]) -> None:
    target = Target(ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        copy(target)
    assert target.pushes == 1 and sleeps == []


# ---- cosign ----------------------------------------------------------------------------------------------


def cosign_runs(monkeypatch: pytest.MonkeyPatch, *results: tuple[int, str]) -> list[list[str]]:
    calls: list[list[str]] = []

    def fake(argv: list[str], **kw: Any) -> run.Completed:
        calls.append(argv)
        code, stderr = results[len(calls) - 1]
        return run.Completed(argv, code, "out", stderr)

    monkeypatch.setattr(run, "call", fake)
    return calls


def test_cosign_is_retried_on_a_throttled_registry(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    calls = cosign_runs(monkeypatch, (1, "Error: GET ...: 429 Too Many Requests"), (1, "HTTP 503"), (0, ""))
    assert cosign._call(["cosign", "sign"], cosign.Options()).returncode == 0
    assert len(calls) == 3 and sleeps == [1.0, 2.0]


def test_cosign_gives_up_after_four_tries(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    calls = cosign_runs(monkeypatch, *[(1, "Error: HTTP 500")] * 4)
    with pytest.raises(CommandFailed, match="HTTP 500"):
        cosign._call(["cosign", "sign"], cosign.Options())
    assert len(calls) == 4 and sleeps == [1.0, 2.0, 4.0]


def test_cosign_is_not_retried_on_other_failures(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    calls = cosign_runs(monkeypatch, (1, "Error: UNAUTHORIZED: authentication required"))
    with pytest.raises(CommandFailed):
        cosign._call(["cosign", "sign"], cosign.Options())
    assert len(calls) == 1 and sleeps == []


def test_a_refused_token_is_renewed_once_and_the_request_sent_again(sleeps: list[float]) -> None:
    basic = {"WWW-Authenticate": 'Basic realm="moka-dev"'}
    session = Session(answer(401, **basic), answer(200, body=b'{"tags": ["v1"]}'), answer(401, **basic))
    asked: list[str] = []

    def renew(refused: str) -> tuple[str, str]:
        asked.append(refused)
        return ("AWS", "fresh") if refused == "kept" else ("AWS", refused)  # a second refusal: nothing newer

    c = RegistryClient("registry.example", "AWS", "kept", renew=renew)
    c._session = session  # type: ignore[assignment]
    assert c.list_tags("a") == ["v1"]
    assert asked == ["kept"] and [h["Authorization"] for _, _, h, _ in session.sent] == [
        "Basic QVdTOmtlcHQ=", "Basic QVdTOmZyZXNo"]  # AWS:kept, then AWS:fresh
    with pytest.raises(ServiceError, match="not authorized"):  # the fresh one refused too: said, not looped on
        c.list_tags("a")
    assert asked == ["kept", "fresh"] and len(session.sent) == 3 and not any(sleeps)


def test_tools_get_credentials_only_once_the_registry_accepted_them() -> None:
    session = Session(answer(401, **{"WWW-Authenticate": 'Basic realm="moka-dev"'}), answer(200))
    c = RegistryClient("registry.example", "AWS", "kept", renew=lambda refused: ("AWS", "fresh"))
    c._session = session  # type: ignore[assignment]
    assert c.accepted_credentials() == ("AWS", "fresh")
    assert c.accepted_credentials() == ("AWS", "fresh") and len(session.sent) == 2  # asked once a run


def test_a_blob_the_registry_cannot_say_it_holds_is_uploaded_again(
        sleeps: list[float], warnings: list[tuple[str, dict[str, Any]]]) -> None:
    """A full disk can leave docker-registry a cut-short link file, answered with a 500 on every HEAD of that
    blob there: after the retries the blob is uploaded again (which rewrites the link), and a rerun ends."""
    session = Session(*[answer(500)] * 6, answer(202, Location="/v2/a/blobs/uploads/0?state=s"), answer(201))
    c = client(session)
    assert c.push_blob("a", BLOB) == digest_of(BLOB) and c.bytes_sent == len(BLOB)
    assert [sent[0] for sent in session.sent] == ["HEAD"] * 6 + ["POST", "PUT"]
    said = f"registry.example: looking up blob {digest_of(BLOB).short} in a answered HTTP 500"
    assert [w for w, _ in warnings] == [f"{said}; writing it again"]
