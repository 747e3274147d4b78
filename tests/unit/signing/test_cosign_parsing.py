"""Parsing what the real cosign 2.5 printed (captured from the local registry into data/): the product's parsing
of stored attestations, and the reference verifier's (tests/cosign_reference.py) parsing of `cosign verify`."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cosign_reference
import pytest

from moka_images.adapters import cosign
from moka_images.errors import ServiceError
from moka_images.models import SBOM_TYPE, SCAN_TYPE, SMOKE_TYPE, Digest

DATA = Path(__file__).parent / "data"
DIGEST = Digest("sha256:8718b0744ab742bd947ed59cdde763d99ace2387b9d0d4b152391d1cf11d3ce2")


def test_downloaded_envelopes_decode_to_in_toto_statements_oldest_first() -> None:
    envelopes = cosign.parse_envelopes((DATA / "download-attestation.jsonl").read_text())
    assert [e.statement().predicate_type for e in envelopes] == [SBOM_TYPE, SCAN_TYPE, SBOM_TYPE, SMOKE_TYPE, SBOM_TYPE]
    last = envelopes[-1].statement()
    assert last.statement_type == "https://in-toto.io/Statement/v0.1"
    assert last.subjects[0].name == "127.0.0.1:15001/moka/itest-sign"
    assert last.covers(DIGEST)
    assert last.predicate["metadata"] == {"component": {"name": "itest"}}
    assert all(len(e.signatures) == 1 and e.signatures[0] for e in envelopes)


def test_verified_envelope_equals_the_stored_one() -> None:
    stored = cosign.parse_envelopes((DATA / "download-attestation.jsonl").read_text())
    verified = cosign.parse_envelopes((DATA / "verify-attestation-sbom.jsonl").read_text())
    assert len(verified) == 1
    assert verified[0] == stored[-1]
    assert verified[0] not in stored[:-1]


def test_verify_output_gives_the_signed_digest() -> None:
    [payload] = cosign_reference.parse_signatures((DATA / "verify.json").read_text())
    assert payload.manifest_digest == DIGEST
    assert payload.docker_reference == "127.0.0.1:15001/moka/itest-sign"
    assert payload.annotations == {}


@pytest.mark.parametrize("name, expected", [
    ("download-none.stderr", "found no attestations"),
    ("verify-unsigned.stderr", "no signatures found"),
    ("verify-wrong-key.stderr", "no matching signatures"),
    ("verify-attestation-wrong-key.stderr", "none of the attestations matched"),
])
def test_nothing_valid_is_an_answer_not_a_failure(name: str, expected: str) -> None:
    reason = cosign_reference.nothing_valid((DATA / name).read_text())
    assert reason is not None and reason.startswith(expected)


def test_other_errors_are_failures() -> None:
    stderr = "Error: GET http://127.0.0.1:15001/v2/: UNAUTHORIZED: authentication required\n"
    assert cosign_reference.nothing_valid(stderr) is None


def test_a_payload_that_is_not_in_toto_is_refused() -> None:
    bad = cosign.Envelope(cosign.IN_TOTO_PAYLOAD, b'{"predicateType": "x"}', ("sig",))
    with pytest.raises(ServiceError, match="not an in-toto statement"):
        bad.statement()
    other = cosign.Envelope("application/vnd.dev.cosign.simplesigning.v1+json", b"{}", ())
    with pytest.raises(ServiceError, match="not application/vnd.in-toto"):
        other.statement()


def test_a_line_that_is_not_an_envelope_is_refused() -> None:
    with pytest.raises(ServiceError, match="not a DSSE envelope"):
        cosign.parse_envelopes(json.dumps({"payload": base64.b64encode(b"{}").decode()}))
    with pytest.raises(ServiceError, match="not JSON"):
        cosign.parse_envelopes("Error: something\n")


def test_statement_with_a_non_object_predicate_is_refused() -> None:
    payload = json.dumps({"_type": "t", "predicateType": "p", "subject": [], "predicate": "text"}).encode()
    with pytest.raises(ServiceError, match="not a JSON object"):
        cosign.parse_statement(payload)


def test_kms_references_are_passed_as_they_are() -> None:
    assert cosign.is_kms("awskms:///alias/moka-test")
    assert cosign.is_kms("awskms://127.0.0.1:15080/1234abcd")
    assert not cosign.is_kms("/home/x/.cache/moka-images/keys/test.key")


def test_plain_http_flags_only_for_loopback_options() -> None:
    assert cosign.Options(plain_http=True).registry_flags() == ["--allow-http-registry", "--allow-insecure-registry"]
    assert cosign.Options().registry_flags() == []


@pytest.mark.parametrize("stderr", [
    ("Error: signing [127.0.0.1:15002/moka/x@sha256:" + "5" * 64 + "]: HEAD http://127.0.0.1:15002/v2/moka/x/"
     "manifests/sha256-" + "5" * 64 + ".sig: unexpected status code 429 Too Many Requests (HEAD responses have no "
     "body, use GET for details)\n"),
    ("Error: PUT http://127.0.0.1:15002/v2/moka/x/blobs/uploads/: unexpected status code 500 Internal Server Error: "
     "internal error (injected)\n"),
    "Error: GET https://123.dkr.ecr.eu-west-1.amazonaws.com/v2/x/manifests/latest: TOOMANYREQUESTS: Rate exceeded\n",
])
def test_throttling_and_server_errors_are_retried(stderr: str) -> None:
    assert cosign.is_transient(stderr)


@pytest.mark.parametrize("name", ["verify-unsigned.stderr", "verify-wrong-key.stderr", "verify-missing.stderr"])
def test_answers_and_client_errors_are_not_retried(name: str) -> None:
    assert not cosign.is_transient((DATA / name).read_text())
    assert not cosign.is_transient("Error: GET http://127.0.0.1:15001/v2/: UNAUTHORIZED: authentication required\n"
                                   "digest sha256:500a" + "0" * 60 + "\n")
