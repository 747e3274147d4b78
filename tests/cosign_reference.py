"""The cosign CLI as the reference verifier: `cosign verify --key` and `cosign verify-attestation --key --type`,
parsed into the values the product's in-process verification (`adapters.signatures`) returns.

The product no longer runs these; the tests do, to hold the two side by side (tests/integration/
test_verify_parity.py) and to check what real cosign says about what the product signed.
"""

from __future__ import annotations

from moka_images.adapters import cosign, run
from moka_images.adapters.retry import Policy
from moka_images.errors import CommandFailed, ServiceError
from moka_images.models import Digest, ImageRef

# What cosign says when there is nothing (valid) to find: an answer, not a failure of the command.
NOTHING_VALID = ("no signatures found", "no matching signatures", "no signatures associated",
                 "found no attestations", "no matching attestations", "none of the attestations matched")
_RETRY = Policy(attempts=4, first=1.0)  # as the product's cosign caller: a throttled registry is not an answer


def parse_signatures(text: str) -> list[cosign.SignedPayload]:
    """The simple-signing payloads that `cosign verify` prints for the signatures that verified."""
    out = []
    for doc in cosign._json_values(text):
        for item in doc if isinstance(doc, list) else [doc]:
            try:
                critical = item["critical"]
                out.append(cosign.SignedPayload(critical["identity"]["docker-reference"],
                                                Digest(critical["image"]["docker-manifest-digest"]),
                                                item.get("optional") or {}))
            except (KeyError, TypeError, ValueError) as exc:
                raise ServiceError(f"cosign verify printed an unexpected payload ({exc})") from exc
    return out


def nothing_valid(stderr: str) -> str | None:
    """cosign's own sentence when it found nothing valid, else None (a real failure)."""
    for line in stderr.splitlines():
        if line.startswith("Error:") and any(m in line for m in NOTHING_VALID):
            return line.removeprefix("Error:").strip()
    return None


def _run(argv: list[str], opts: cosign.Options) -> run.Completed:
    return _RETRY.call(lambda: run.call(argv, env=dict(opts.env), timeout=300, check=False),
                       retry_result=lambda d: d.returncode != 0 and cosign.is_transient(d.stderr))


def _pinned(ref: ImageRef) -> str:
    if ref.digest is None:
        raise ValueError(f"{ref} is not pinned to a digest")
    return f"{ref.name}@{ref.digest}"


def verify(ref: ImageRef, public: str, opts: cosign.Options) -> cosign.SignatureCheck:
    """Signatures on `ref`'s digest that `cosign verify` accepts with `public`, or its reason for none."""
    done = _run(["cosign", "verify", "--key", public, "--insecure-ignore-tlog=true", *opts.registry_flags(),
                 _pinned(ref)], opts)
    if done.returncode == 0:
        return cosign.SignatureCheck(tuple(parse_signatures(done.stdout)))
    reason = nothing_valid(done.stderr)
    if reason is None:
        raise CommandFailed(done.argv, done.returncode, done.stderr.strip()[-2000:])
    return cosign.SignatureCheck((), reason)


def verify_attestations(ref: ImageRef, public: str, predicate_type: str, opts: cosign.Options) -> list[cosign.Envelope]:
    """Attestations of `predicate_type` on `ref`'s digest that `cosign verify-attestation` accepts with `public`."""
    done = _run(["cosign", "verify-attestation", "--key", public, "--type", predicate_type,
                 "--insecure-ignore-tlog=true", *opts.registry_flags(), _pinned(ref)], opts)
    if done.returncode == 0:
        return cosign.parse_envelopes(done.stdout)
    if nothing_valid(done.stderr) is None:
        raise CommandFailed(done.argv, done.returncode, done.stderr.strip()[-2000:])
    return []
