"""Signatures asked for at once with one key are made by one cosign process, and each request gets its answer."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from moka_images.errors import CommandFailed
from moka_images.models import Digest, ImageRef
from moka_images.stages.verify.signing import _Batches


def ref(n: int) -> ImageRef:
    return ImageRef("127.0.0.1:15002", "moka/x", digest=Digest("sha256:" + f"{n:x}" * 64))


class Signer:
    """A stand-in for `cosign sign`: records each process's refs; the first waits until `go` is set."""

    def __init__(self, bad: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.calls: list[list[ImageRef]] = []
        self.started, self.go = threading.Event(), threading.Event()
        self.bad = {ref(n) for n in bad}

    def __call__(self, refs: list[ImageRef]) -> None:
        self.calls.append(refs)
        self.started.set()
        self.go.wait(5)
        if self.bad & set(refs):
            raise CommandFailed(["cosign", "sign"], 1, "MANIFEST_UNKNOWN")


def test_a_lone_request_is_signed_at_once() -> None:
    signer = Signer()
    signer.go.set()
    _Batches().run("k", ref(1), signer)
    assert signer.calls == [[ref(1)]]


def test_requests_arriving_while_one_signs_are_signed_together() -> None:
    batches, signer = _Batches(), Signer()
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batches.run, "k", ref(1), signer)
        assert signer.started.wait(5)
        rest = [pool.submit(batches.run, "k", ref(n), signer) for n in range(2, 8)]
        while sum(len(c) for c in batches._pending.values()) < 6:
            threading.Event().wait(0.01)
        signer.go.set()
        for future in [first, *rest]:
            future.result(5)
    assert signer.calls == [[ref(1)], [ref(n) for n in range(2, 8)]]


def test_another_key_is_never_in_the_same_process() -> None:
    batches, signer = _Batches(), Signer()
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batches.run, "dev", ref(1), signer)
        assert signer.started.wait(5)
        other = pool.submit(batches.run, "prod", ref(2), signer)  # leads its own batch at once
        while len(signer.calls) < 2:
            threading.Event().wait(0.01)
        signer.go.set()
        first.result(5), other.result(5)
    assert sorted(map(str, (c[0] for c in signer.calls))) == sorted([str(ref(1)), str(ref(2))])


def test_a_failed_batch_is_signed_one_by_one_and_only_the_bad_one_fails() -> None:
    batches, signer = _Batches(), Signer(bad={3})
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batches.run, "k", ref(1), signer)
        assert signer.started.wait(5)
        rest = {n: pool.submit(batches.run, "k", ref(n), signer) for n in (2, 3, 4)}
        while sum(len(c) for c in batches._pending.values()) < 3:
            threading.Event().wait(0.01)
        signer.go.set()
        first.result(5)
        rest[2].result(5), rest[4].result(5)
        with pytest.raises(CommandFailed):
            rest[3].result(5)
    assert signer.calls[1] == [ref(2), ref(3), ref(4)] and signer.calls[2:] == [[ref(2)], [ref(3)], [ref(4)]]


def test_a_bug_reaches_every_waiting_request_instead_of_hanging_it() -> None:
    batches = _Batches()
    started, go = threading.Event(), threading.Event()

    def broken(refs: list[ImageRef]) -> None:
        started.set()
        go.wait(5)
        raise RuntimeError("a bug")

    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batches.run, "k", ref(1), broken)
        assert started.wait(5)
        waiting = pool.submit(batches.run, "k", ref(2), broken)
        while not batches._pending.get("k"):
            threading.Event().wait(0.01)
        go.set()
        with pytest.raises(RuntimeError):
            first.result(5)
        with pytest.raises(RuntimeError):
            waiting.result(5)
    assert batches._running == set()
