"""Promotion decisions, pure: NOOP / COPY / TAG-MOVE / REFUSED, semver and tag rules, approval, rollback."""

from __future__ import annotations

import hashlib
import json

import pytest
import semver

from moka_images.adapters.copy import attachment_tags, merge_attachment
from moka_images.adapters.registry import Manifest, digest_of
from moka_images.models import Digest, Environment
from moka_images.plan.graph import BuildTag
from moka_images.plan.promotion import (
    Candidate,
    GateResult,
    Inventory,
    Outcome,
    decide,
    decide_rollback,
    record,
    smoke_covers,
)
from moka_images.stages.status import Cell, build_search, current, notes, serving_tag

TEST, DEV, STAGING, PROD = Environment.TEST, Environment.DEV, Environment.STAGING, Environment.PROD
PASSING = (GateResult("signature", True, "ok"), GateResult("scan", True, "ok"), GateResult("smoke", True, "ok"))


def d(name: str) -> Digest:
    return Digest("sha256:" + hashlib.sha256(name.encode()).hexdigest())


def build(version: str, own: str = "a" * 10) -> BuildTag:
    return BuildTag(version, own, "b" * 10)


def cand(version: str, digest: str = "new", own: str = "a" * 10, created: str | None = None) -> Candidate:
    return Candidate("spark-3.5", d(digest), build(version, own), created)


def inv(tags: dict[str, str], created: dict[str, str] | None = None) -> Inventory:
    return Inventory({t: d(x) for t, x in tags.items()}, {d(x): c for x, c in (created or {}).items()})


def promote(c: Candidate, inventory: Inventory, dst: Environment = DEV, src: Environment | None = None,
            gates: tuple[GateResult, ...] = PASSING, approved_by: str | None = None, required: bool = False):
    return decide(c, src or dst.previous, dst, inventory, gates, approval_required=required,
                  approved_by=approved_by)


# ---- outcomes ----------------------------------------------------------------------------------


def test_first_promotion_copies_and_sets_build_tag_first_then_rolling_tags() -> None:
    c = cand("1.2.3")
    decision = promote(c, Inventory())
    assert decision.outcome is Outcome.COPY
    assert decision.edge.tags == (str(c.build), "1.2.3", "1.2", "latest")
    assert all(m.old is None and m.new == c.digest for m in decision.moves)
    assert (decision.edge.src_env, decision.edge.dst_env, decision.edge.digest) == (TEST, DEV, c.digest)
    assert not decision.problems


def test_everything_already_there_is_a_noop() -> None:
    c = cand("1.2.3")
    there = inv({str(c.build): "new", "1.2.3": "new", "1.2": "new", "latest": "new"})
    decision = promote(c, there)
    assert decision.outcome is Outcome.NOOP
    assert decision.moves == () and decision.edge.tags == ()


def test_build_tag_there_but_rolling_tags_behind_is_a_tag_move() -> None:
    c = cand("1.2.3")
    old = build("1.2.2")
    there = inv({str(c.build): "new", str(old): "old", "1.2.2": "old", "1.2": "old", "latest": "old"})
    decision = promote(c, there)
    assert decision.outcome is Outcome.TAG_MOVE
    assert [(m.tag, m.old) for m in decision.moves] == [("1.2.3", None), ("1.2", d("old")), ("latest", d("old"))]


def test_digest_present_without_its_build_tag_is_copied_again_so_the_rerun_finishes() -> None:
    # A crash after the index landed but before any tag: the build tag marks completeness, so copy (idempotent).
    c = cand("1.2.3")
    assert promote(c, inv({"something-else": "new"})).outcome is Outcome.COPY


# ---- refusals: every reason at once ------------------------------------------------------------


def test_failed_gates_refuse_and_all_problems_are_reported() -> None:
    gates = (GateResult("signature", False, "no signature verifies with test"),
             GateResult("scan", False, "blocked by dev policy: CVE-2099-0001"),
             GateResult("smoke", False, "smoke did not pass on linux/arm64"))
    decision = promote(cand("1.0.0-rc.1"), Inventory(), dst=PROD, gates=gates, required=True)
    assert decision.outcome is Outcome.REFUSED and decision.refused
    names = [p.split(":")[0] for p in decision.problems]
    # The signature first (broken trust is never hidden), then the local gates, then the evidence.
    assert names == ["signature", "semver", "approval", "scan", "smoke"]
    assert "pre-release" in decision.problems[1] and "--approved-by" in decision.problems[2]


@pytest.mark.parametrize("version, dst, ok", [
    ("1.0.0", PROD, True), ("1.0.0-rc.1", PROD, False), ("2.0.0-alpha", PROD, False),
    ("1.0.0-rc.1", STAGING, True), ("1.0.0-rc.1", DEV, True),
])
def test_only_final_versions_reach_prod(version: str, dst: Environment, ok: bool) -> None:
    decision = promote(cand(version), Inventory(), dst=dst, approved_by="alice", required=dst is PROD)
    assert (decision.outcome is Outcome.COPY) == ok
    if not ok:
        assert any("pre-release" in p and "only final versions reach prod" in p for p in decision.problems)


def test_a_pre_release_gets_only_its_own_tag() -> None:
    c = cand("1.3.0-rc.1")
    assert promote(c, inv({"latest": "old", "1.3": "old"})).edge.tags == (str(c.build), "1.3.0-rc.1")


def test_build_tag_pointing_elsewhere_is_refused() -> None:
    c = cand("1.2.3")
    decision = promote(c, inv({str(c.build): "other"}))
    assert decision.outcome is Outcome.REFUSED
    assert any(f"build tag {c.build}" in p and "never move" in p for p in decision.problems)


@pytest.mark.parametrize("src, dst", [(TEST, STAGING), (DEV, DEV), (STAGING, DEV)])
def test_promotion_goes_one_stage_at_a_time(src: Environment, dst: Environment) -> None:
    decision = promote(cand("1.0.0"), Inventory(), dst=dst, src=src)
    assert decision.outcome is Outcome.REFUSED
    assert decision.problems[0].startswith("stage:")


def test_nothing_is_promoted_into_test() -> None:
    decision = promote(cand("1.0.0"), Inventory(), dst=TEST, src=TEST)
    assert decision.refused and "built" in decision.problems[0]


@pytest.mark.parametrize("required, approver, ok", [
    (True, None, False), (True, "  ", False), (True, "alice", True), (False, None, True),
])
def test_approval(required: bool, approver: str | None, ok: bool) -> None:
    decision = promote(cand("1.0.0"), Inventory(), dst=PROD, approved_by=approver, required=required)
    assert (not decision.refused) == ok
    gate = next(g for g in decision.gates if g.name == "approval")
    assert gate.passed == ok
    if ok and approver:
        assert gate.evidence["approved_by"] == approver


# ---- rolling tags only move forward ------------------------------------------------------------


def test_rolling_tags_pointing_at_newer_versions_stay() -> None:
    # A hotfix 1.4.1 promoted while 2.0.0 is latest: 1.4.1 and 1.4 move, latest stays.
    newer, older = build("2.0.0", "c" * 10), build("1.4.0", "e" * 10)
    there = inv({str(newer): "v2", "2.0.0": "v2", "2.0": "v2", "latest": "v2",
                 str(older): "v14", "1.4.0": "v14", "1.4": "v14"})
    decision = promote(cand("1.4.1"), there)
    assert decision.outcome is Outcome.COPY
    assert [m.tag for m in decision.moves][1:] == ["1.4.1", "1.4"]
    assert decision.kept == ("latest stays at 2.0.0 (" + d("v2").short + "), newer than 1.4.1",)


def test_same_version_rebuild_moves_forward_only_by_build_time() -> None:
    first = build("1.0.0", "1" * 10)
    there = inv({str(first): "first", "1.0.0": "first", "1.0": "first", "latest": "first"},
                {"first": "2026-01-02T00:00:00Z"})
    newer = promote(cand("1.0.0", "second", "2" * 10, "2026-01-03T00:00:00Z"), there)
    assert [m.tag for m in newer.moves][1:] == ["1.0.0", "1.0", "latest"] and not newer.kept
    older = promote(cand("1.0.0", "second", "2" * 10, "2026-01-01T00:00:00Z"), there)
    assert older.outcome is Outcome.COPY and [m.tag for m in older.moves] == ["1.0.0-" + "2" * 10 + "-" + "b" * 10]
    assert len(older.kept) == 3


def test_a_tag_the_registries_hold_immutable_is_never_planned_to_move() -> None:
    # plan/tags.py: a tag with two hyphens is immutable in ECR, so a pre-release `1.3.0-rc-1` pins its own tag.
    first = build("1.3.0-rc-1", "1" * 10)
    there = inv({str(first): "first", "1.3.0-rc-1": "first"}, {"first": "2026-01-01T00:00:00Z"})
    decision = promote(cand("1.3.0-rc-1", "second", "2" * 10, "2026-01-02T00:00:00Z"), there)
    assert decision.refused
    assert any("tag 1.3.0-rc-1 in dev points at" in p and "immutable" in p for p in decision.problems)
    assert not promote(cand("1.3.0-rc-1", "second", "2" * 10), Inventory()).refused  # a new tag is fine


def test_a_rolling_tag_on_an_untracked_digest_is_taken_over() -> None:
    decision = promote(cand("1.0.0"), inv({"latest": "hand-pushed"}))
    assert any(m.tag == "latest" and m.old == d("hand-pushed") for m in decision.moves)


# ---- rollback ----------------------------------------------------------------------------------


def _two_versions() -> tuple[Candidate, Inventory]:
    v1, v2 = build("1.1.0", "1" * 10), build("1.2.0", "2" * 10)
    there = inv({str(v1): "v1", str(v2): "v2", "1.1.0": "v1", "1.1": "v1", "1.2.0": "v2", "1.2": "v2",
                 "latest": "v2"})
    return Candidate("spark-3.5", d("v1"), v1), there


def test_rollback_moves_latest_back_to_an_earlier_build() -> None:
    c, there = _two_versions()
    decision = decide_rollback(c, STAGING, there, PASSING, approval_required=False, approved_by=None)
    assert decision.outcome is Outcome.TAG_MOVE and decision.rollback
    assert [(m.tag, m.old, m.new) for m in decision.moves] == [("latest", d("v2"), d("v1"))]
    assert decision.edge.src_env == decision.edge.dst_env == STAGING


def test_rollback_to_a_build_not_in_the_environment_is_refused() -> None:
    _, there = _two_versions()
    stranger = Candidate("spark-3.5", d("v0"), build("1.0.0", "0" * 10))
    decision = decide_rollback(stranger, STAGING, there, PASSING, approval_required=False, approved_by=None)
    assert decision.refused and any("never promoted to staging" in p for p in decision.problems)


def test_rollback_forward_is_refused_and_prod_rollback_needs_approval() -> None:
    v1, v2 = build("1.1.0", "1" * 10), build("1.2.0", "2" * 10)
    there = inv({str(v1): "v1", str(v2): "v2", "latest": "v1"})
    forward = decide_rollback(Candidate("spark-3.5", d("v2"), v2), PROD, there, PASSING,
                              approval_required=True, approved_by=None)
    assert forward.refused
    assert any("a promotion (`promote`), not a rollback" in p for p in forward.problems) and any("approver" in p for p in forward.problems)


def test_rollback_with_failed_gates_is_refused() -> None:
    c, there = _two_versions()
    gates = (GateResult("signature", False, "no signature verifies with staging"),)
    assert decide_rollback(c, STAGING, there, gates, approval_required=False, approved_by=None).refused


def test_rollback_to_what_is_already_served_is_a_noop() -> None:
    v1 = build("1.1.0", "1" * 10)
    there = inv({str(v1): "v1", "1.1.0": "v1", "1.1": "v1", "latest": "v1"})
    decision = decide_rollback(Candidate("spark-3.5", d("v1"), v1), DEV, there, PASSING,
                               approval_required=False, approved_by=None)
    assert decision.outcome is Outcome.NOOP


# ---- records and smoke -------------------------------------------------------------------------


def test_record_names_who_when_what_and_every_gate_with_evidence() -> None:
    gates = (GateResult("scan", True, "allowed", {"attestation": "sha256:abc"}),)
    decision = promote(cand("1.0.0"), Inventory(), dst=PROD, gates=gates, approved_by="alice", required=True)
    doc = record(decision, repository="moka/spark-3.5", by="ci", at="2026-01-01T00:00:00Z", approved_by="alice",
                 registries={"staging": "r3", "prod": "r4"})
    assert doc["digest"] == str(d("new")) and doc["from"] == "staging" and doc["to"] == "prod"
    assert doc["by"] == "ci" and doc["approved_by"] == "alice" and doc["action"] == "promote"
    assert {g["name"] for g in doc["gates"]} == {"stage", "scan", "semver", "approval"}
    assert next(g for g in doc["gates"] if g["name"] == "scan")["evidence"] == {"attestation": "sha256:abc"}
    json.dumps(doc)  # it is a predicate: plain JSON


def _smoke(digest: Digest, passed: dict[str, bool]) -> dict:
    return {"image": {"digest": str(digest)}, "passed": all(passed.values()), "backend": "docker",
            "failures": [f"{p}: jvm: error" for p, ok in passed.items() if not ok],
            "platforms": [{"platform": p, "passed": ok} for p, ok in passed.items()]}


def test_smoke_must_cover_every_platform_of_that_digest() -> None:
    both = ("linux/amd64", "linux/arm64")
    assert smoke_covers(_smoke(d("x"), {"linux/amd64": True, "linux/arm64": True}), d("x"), both)[0]
    ok, why = smoke_covers(_smoke(d("x"), {"linux/amd64": True}), d("x"), both)
    assert not ok and "linux/arm64" in why
    ok, why = smoke_covers(_smoke(d("x"), {"linux/amd64": True, "linux/arm64": False}), d("x"), both)
    assert not ok and "linux/arm64" in why
    ok, why = smoke_covers(_smoke(d("y"), {"linux/amd64": True, "linux/arm64": True}), d("x"), both)
    assert not ok and "not " + str(d("x")) in why


# ---- cosign attachments (the copy engine's pure parts) -----------------------------------------


def test_attachment_tags_of_the_index_and_its_manifests() -> None:
    index, child = d("index"), d("child")
    tags = [f"sha256-{index.hex}.sig", f"sha256-{index.hex}.att", f"sha256-{child.hex}.sig",
            f"sha256-{d('other').hex}.sig", "latest", f"sha256-{index.hex}"]
    assert attachment_tags(tags, [index, child]) == sorted(tags[:3])


def _sig_manifest(*layers: tuple[str, str]) -> Manifest:
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 1, "digest": str(d("cfg"))},
           "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "size": 10,
                       "digest": str(d(payload)), "annotations": {"dev.cosignproject.cosign/signature": sig}}
                      for payload, sig in layers]}
    raw = json.dumps(doc).encode()
    return Manifest(raw, doc["mediaType"], digest_of(raw))


def test_merging_signatures_keeps_ours_and_appends_theirs_once() -> None:
    ours = _sig_manifest(("payload", "test-sig"), ("payload", "dev-sig"))
    theirs = _sig_manifest(("payload", "test-sig"))
    assert merge_attachment(ours, theirs, {"rootfs": {}}) is None  # nothing new: leave the target alone
    theirs = _sig_manifest(("payload", "test-sig"), ("payload", "staging-sig"))
    raw, config_raw = merge_attachment(ours, theirs, {"architecture": "", "rootfs": {}})
    merged, config = json.loads(raw), json.loads(config_raw)
    sigs = [layer["annotations"]["dev.cosignproject.cosign/signature"] for layer in merged["layers"]]
    assert sigs == ["test-sig", "dev-sig", "staging-sig"]
    assert merged["config"]["digest"] == str(digest_of(config_raw)) and merged["config"]["size"] == len(config_raw)
    assert config["rootfs"]["diff_ids"] == [str(d("payload"))] * 3 and len(config["history"]) == 3


# ---- status --------------------------------------------------------------------------------------


def test_status_current_prefers_latest_then_the_highest_version() -> None:
    v1, v2 = build("1.0.0"), build("1.1.0-rc.1", "c" * 10)
    assert current(inv({str(v1): "a", "latest": "a", "1.0.0": "a"})) == (d("a"), "1.0.0", str(v1))
    assert current(inv({str(v2): "b", "1.1.0-rc.1": "b"})) == (d("b"), "1.1.0-rc.1", str(v2))
    assert current(Inventory()) is None


def test_status_looks_up_the_serving_tag_then_builds_newest_first() -> None:
    b1, b2 = "1.0.0-93498a42e2-cec838c54a", "1.1.0-0123456789-cec838c54a"
    cosigns = ["sha256-" + "a" * 64 + ".sig", "sha256-" + "a" * 64 + ".att"]
    listed = ["1.0", "1.0.0", b1, "1.1.0", b2, f"{b2}-arm64", "latest", "exp1", *cosigns]
    assert serving_tag(listed) == "latest"
    # without `latest`, the highest version tag (semver order, not text order), never `1.0` nor cosign's
    assert serving_tag([t for t in listed if t != "latest"] + ["1.10.0", "1.9.0"]) == "1.10.0"
    assert serving_tag(["1.0", "exp1", *cosigns]) is None and serving_tag([]) is None
    assert build_search(listed) == [[b2], [b1]]
    assert build_search(["latest", "1.0.0"]) == []


def test_status_build_rounds_double_and_keep_a_version_whole() -> None:
    tags = [f"{v}-{own:010d}-cec838c54a" for v in ("1.0.0", "1.2.0", "1.10.0") for own in range(3)]
    tags += [f"2.0.{p}-0000000000-cec838c54a" for p in range(10)]
    rounds = build_search(tags)
    assert [r[0].split("-")[0] for r in rounds] == ["2.0.9", "2.0.8", "2.0.6", "2.0.2", "1.0.0"]
    # a round closes only between versions: 2.0.2-2.0.0, 1.10.0 (above 1.2.0) and 1.2.0 make 9 of 8 wanted
    assert [len(r) for r in rounds] == [1, 2, 4, 9, 3]
    assert sorted(t for r in rounds for t in r) == sorted(tags)
    versions = [semver.Version.parse(t.split("-")[0]) for r in rounds for t in r]
    assert versions == sorted(versions, reverse=True)


def test_status_notes_drift_and_pending_promotions() -> None:
    cells = (Cell(TEST, d("b"), "1.1.0"), Cell(DEV, d("b"), "1.1.0"), Cell(STAGING, d("a"), "1.0.0"),
             Cell(PROD))
    assert notes("1.2.0", cells) == ["drift: manifests declare 1.2.0, test serves 1.1.0",
                                     "pending: 1.1.0 dev -> staging", "pending: 1.0.0 staging -> prod"]
    assert notes("1.0.0", (Cell(TEST), Cell(DEV), Cell(STAGING), Cell(PROD))) == [
        "drift: manifests declare 1.0.0, nothing is built in test"]
    rolled_back = (Cell(TEST, d("b"), "1.1.0"), Cell(DEV, d("a"), "1.2.0"), Cell(STAGING), Cell(PROD))
    assert notes("1.1.0", rolled_back) == ["pending: 1.2.0 dev -> staging"]


def test_promotion_reads_build_and_rolling_tags_only() -> None:
    from moka_images.stages.images import _tracked

    build_tag = "1.0.0-93498a42e2-cec838c54a"
    assert all(_tracked(t) for t in (build_tag, "1.0.0", "1.0", "latest", "1.1.0-rc.1"))
    assert not any(_tracked(t) for t in (f"{build_tag}-arm64", f"{build_tag}-amd64", "sha256-ab.sig", "exp1"))
