"""Promotion end to end against in-memory registries: `prepare` (resolve, gates, decide) and `carry_out` (under the
lock: re-decide, ensure the repository, copy, sign, attest, move tags, record), with the gates that need the world,
signing, attesting and ECR replaced by values and recorders. No process, no network.

One list, `events`, holds in order every registry write and every recorded call, so each test can say what
happened and in which order (signatures and the promotion attestation before any tag moves).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fakes import (
    OCI_INDEX,
    FakeRegistry,
    Pushed,
    add_signature,
    layers_of,
    push_image,
    signature_tag,
    signers,
)

from moka_images.adapters.copy import copy_image
from moka_images.config.release import RELEASE_SCHEMA, PromotionPlan, Release
from moka_images.config.settings import Settings, load_settings
from moka_images.errors import GateFailed, ServiceError
from moka_images.models import Digest, Environment, ImageRef
from moka_images.plan.promotion import GateResult, Outcome
from moka_images.plan.tags import is_cosign_tag
from moka_images.stages import history, registries, repositories
from moka_images.stages.images import BASE_NAME, base_repository
from moka_images.stages.promote import gates
from moka_images.stages.promote import prepare as prepare_module
from moka_images.stages.promote.apply import blob_cache_path, carry_out, promote
from moka_images.stages.promote.inventory import Source
from moka_images.stages.promote.prepare import prepare, prepare_rollback
from moka_images.stages.promote.release import apply_plan, plan_release
from moka_images.stages.verify import attestations, signing
from moka_images.stages.verify.attestations import AttestationKind

ROOT = Path(__file__).resolve().parents[3]
TEST, DEV, STAGING, PROD = Environment.TEST, Environment.DEV, Environment.STAGING, Environment.PROD
IMAGE = "spark-3.5"


@dataclass
class World:
    """The settings, one fake registry per environment, and what happened, in order."""

    settings: Settings
    registries: dict[Environment, FakeRegistry]
    events: list[tuple[Any, ...]]
    verdicts: dict[str, bool] = field(default_factory=lambda: {"signature": True, "scan": True, "smoke": True})
    gate_calls: list[tuple[str, Environment, Environment, Digest]] = field(default_factory=list)
    predicates: list[Mapping[str, Any]] = field(default_factory=list)
    on_sign: list[Any] = field(default_factory=list)  # callbacks run while signing (a concurrent writer)

    @property
    def repo(self) -> str:
        return self.settings.repository(IMAGE)

    def __getitem__(self, env: Environment) -> FakeRegistry:
        return self.registries[env]

    def build(self, version: str, seed: str, created: str) -> Pushed:
        """An image as a build leaves it in test: build tag, rolling tags, test's signature."""
        image = push_image(self[TEST], self.repo, version, seed=seed, created=created)
        add_signature(self[TEST], self.repo, image.digest, "test")
        return image

    def image_tags(self, env: Environment) -> dict[str, Digest]:
        return {t: d for t, d in self[env].tags(self.repo).items() if not is_cosign_tag(t)}

    def story(self, since: int = 0, env: Environment = DEV) -> list[str]:
        """The events from `since` on as labels: `write` for blobs, manifests and cosign's tags (runs of them
        folded into one), `tag:<tag>` for an image tag moved in `env`, and each recorded call."""
        out: list[str] = []
        for event in self.events[since:]:
            if event[0] in ("blob", "mount", "manifest", "tag") and event[1] != self.settings.env(env).registry:
                continue
            if event[0] == "tag" and not is_cosign_tag(event[3]):
                label = f"tag:{event[3]}"
            elif event[0] in ("blob", "mount", "manifest", "tag"):
                label = "write"
            else:
                label = ":".join(str(x) for x in event[:2])
            if not (label == "write" and out and out[-1] == "write"):
                out.append(label)
        return out


@pytest.fixture
def w(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    for name in ("MOKA_REPOSITORY_PREFIX", "MOKA_PROFILE", "MOKA_PLATFORMS", "MOKA_ACTOR", "GITHUB_ACTOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MOKA_HOME", str(tmp_path))
    settings = load_settings(ROOT)
    events: list[tuple[Any, ...]] = []
    fakes = {env: FakeRegistry(settings.env(env).registry, events=events) for env in Environment}
    w = World(settings, fakes, events)
    monkeypatch.setattr(registries, "client", lambda settings, env: fakes[env])
    monkeypatch.setattr(registries, "login_tools", lambda settings, env: None)

    def verdict(name: str, source: Source, target: Environment) -> GateResult:
        w.gate_calls.append((name, source.env, target, source.candidate.digest))
        ok = w.verdicts[name]
        return GateResult(name, ok, f"{name} {'passes' if ok else 'fails'} (fake)", {"fake": True})

    monkeypatch.setattr(gates, "signature_gate", lambda settings, source: verdict("signature", source, source.env))
    monkeypatch.setattr(gates, "scan_gate", lambda settings, source, target, client, evidence, found, today:
                        verdict("scan", source, target))
    monkeypatch.setattr(gates, "smoke_gate", lambda source, evidence, found: verdict("smoke", source, source.env))
    monkeypatch.setattr(prepare_module, "signature_gate", gates.signature_gate)

    def ensure(settings: Settings, env: Environment, repository: str, protected: Any = None) -> list[str]:
        events.append(("ensure", env.value, repository, tuple(protected or ())))
        return []

    def sign(settings: Settings, env: Environment, ref: ImageRef) -> bool:
        assert ref.digest is not None and ref.registry == settings.env(env).registry
        events.append(("sign", env.value, ref.digest))
        for callback in w.on_sign:
            callback()
        add_signature(fakes[env], ref.repository, ref.digest, env.value)  # what cosign leaves in the registry
        return True

    def attest(settings: Settings, env: Environment, ref: ImageRef, kind: AttestationKind,
               predicate: Mapping[str, Any], *, replace: bool = False) -> bool:
        events.append(("attest", kind.value, env.value, ref.digest, replace))
        w.predicates.append(predicate)
        return True

    real_append = history.append

    def append(settings: Settings, record: Mapping[str, Any]) -> None:
        events.append(("history", record["action"], record["digest"]))
        real_append(settings, record)

    def mounting(settings: Settings, env: Environment) -> repositories.BlobMounting:
        events.append(("mounting", env.value))
        return repositories.BlobMounting(True, "enabled")

    monkeypatch.setattr(repositories, "ensure_repository", ensure)
    monkeypatch.setattr(repositories, "ensure_blob_mounting", mounting)
    monkeypatch.setattr(signing, "sign", sign)
    monkeypatch.setattr(attestations, "attest", attest)
    monkeypatch.setattr(history, "append", append)
    yield w


def promote_to(w: World, spec: str, target: Environment, **kw: Any) -> Outcome:
    """prepare + carry_out, returning the outcome carried out."""
    return carry_out(w.settings, prepare(w.settings, spec, target, **kw), by="tester").decision.outcome


# ---- promotion --------------------------------------------------------------------------------------------


def test_first_promotion_copies_the_image_signs_attests_then_moves_build_tag_then_rolling_tags(w: World) -> None:
    a = w.build("1.0.1", "a", "2025-01-01T00:00:00Z")
    prepared = prepare(w.settings, f"{IMAGE}:1.0.1", DEV)
    decision = prepared.decision
    assert decision.outcome is Outcome.COPY and not decision.kept
    assert [(m.tag, m.old, m.new) for m in decision.moves] == [
        (str(a.build), None, a.digest), ("1.0.1", None, a.digest), ("1.0", None, a.digest), ("latest", None, a.digest)]
    assert prepared.source.platforms == ("linux/amd64", "linux/arm64") and prepared.source.candidate.created == a.created
    assert prepared.destination == f"{w.settings.env(DEV).registry}/moka/spark-3.5"
    assert w.gate_calls == [("signature", TEST, TEST, a.digest), ("scan", TEST, DEV, a.digest),
                            ("smoke", TEST, TEST, a.digest)]
    assert [g.name for g in decision.gates] == ["signature", "stage", "semver", "approval", "scan", "smoke"]
    assert w[DEV].writes == [] and w.story() == []  # preparing changes nothing
    in_test = list(w[TEST].writes)

    done = carry_out(w.settings, prepared, by="tester")

    assert done.moved == (str(a.build), "1.0.1", "1.0", "latest")
    assert w.image_tags(DEV) == {str(a.build): a.digest, "1.0.1": a.digest, "1.0": a.digest, "latest": a.digest}
    assert w[DEV].get_manifest(w.repo, "latest").raw == a.raw  # the same bytes, so the same digest
    for child in a.platforms.values():
        theirs, ours = w[TEST].get_manifest(w.repo, str(child)), w[DEV].get_manifest(w.repo, str(child))
        assert ours == theirs and all(w[DEV].get_blob(w.repo, b) == w[TEST].get_blob(w.repo, b) for b in ours.blobs())
    assert done.copy is not None
    assert (done.copy.blobs_copied, done.copy.manifests_written, done.copy.attachments) == (6, 3, [signature_tag(a.digest)])
    assert signers(w[DEV], w.repo, a.digest) == ["test", "dev"]  # test's signature copied, dev's added
    assert w[TEST].writes == in_test  # the source is only read
    assert w.story() == ["ensure:dev", "mounting:dev", "write", "sign:dev", "write", "attest:promotion",
                         f"tag:{a.build}", "tag:1.0.1", "tag:1.0", "tag:latest", "history:promote"]
    assert ("ensure", "dev", w.repo, ()) in w.events  # a final version: no pre-release tag to protect
    assert [e for e in w.events if e[0] in ("sign", "attest")] == [
        ("sign", "dev", a.digest), ("attest", "promotion", "dev", a.digest, False)]
    record = w.predicates[-1]
    assert record == done.record
    assert (record["action"], record["from"], record["to"], record["digest"], record["outcome"], record["by"]) \
        == ("promote", "test", "dev", str(a.digest), "copy", "tester")
    assert [t["tag"] for t in record["tags"]] == [str(a.build), "1.0.1", "1.0", "latest"]
    (line,) = history.read(w.settings)
    assert line["moved"] == list(done.moved) and line["copy"]["blobs_copied"] == 6 and line["digest"] == str(a.digest)


def test_promoting_again_is_a_noop_that_writes_nothing(w: World) -> None:
    a = w.build("1.0.1", "a", "2025-01-01T00:00:00Z")
    assert promote_to(w, f"{IMAGE}:1.0.1", DEV) is Outcome.COPY
    before, writes = len(w.events), list(w[DEV].writes)
    prepared = prepare(w.settings, f"{IMAGE}@{a.digest}", DEV)
    assert prepared.decision.outcome is Outcome.NOOP and prepared.decision.moves == ()
    done = carry_out(w.settings, prepared, by="tester")
    assert (done.decision.outcome, done.moved, done.copy, done.record) == (Outcome.NOOP, (), None, None)
    assert promote(w.settings, IMAGE, DEV, by="tester").decision.outcome is Outcome.NOOP
    assert w.events[before:] == [] and w[DEV].writes == writes and len(history.read(w.settings)) == 1


def test_a_newer_version_moves_the_rolling_tags_forward_and_an_older_one_leaves_newer_tags_kept(w: World) -> None:
    a = w.build("1.0.1", "a", "2025-01-01T00:00:00Z")
    b = w.build("1.1.0", "b", "2025-02-01T00:00:00Z")
    c = w.build("1.0.2", "c", "2025-03-01T00:00:00Z")  # a fix of the older line, built last
    promote_to(w, f"{IMAGE}:1.0.1", DEV)

    prepared = prepare(w.settings, f"{IMAGE}:1.1.0", DEV)
    assert prepared.decision.outcome is Outcome.COPY
    assert [(m.tag, m.old) for m in prepared.decision.moves] == [
        (str(b.build), None), ("1.1.0", None), ("1.1", None), ("latest", a.digest)]
    carry_out(w.settings, prepared, by="tester")
    assert w.image_tags(DEV) == {str(a.build): a.digest, "1.0.1": a.digest, "1.0": a.digest,
                                 str(b.build): b.digest, "1.1.0": b.digest, "1.1": b.digest, "latest": b.digest}

    prepared = prepare(w.settings, f"{IMAGE}:1.0.2", DEV)
    assert prepared.decision.outcome is Outcome.COPY
    assert [(m.tag, m.old) for m in prepared.decision.moves] == [(str(c.build), None), ("1.0.2", None), ("1.0", a.digest)]
    assert prepared.decision.kept == (f"latest stays at 1.1.0 ({b.digest.short}), newer than 1.0.2",)
    since = len(w.events)
    done = carry_out(w.settings, prepared, by="tester")
    assert done.moved == (str(c.build), "1.0.2", "1.0")
    assert w.image_tags(DEV)["latest"] == b.digest and w.image_tags(DEV)["1.0"] == c.digest
    assert "tag:latest" not in w.story(since)


def test_a_rollback_points_rolling_tags_back_without_copy_or_signature_and_promoting_again_is_a_tag_move(
        w: World) -> None:
    a = w.build("1.0.1", "a", "2025-01-01T00:00:00Z")
    c = w.build("1.0.2", "c", "2025-02-01T00:00:00Z")
    promote_to(w, f"{IMAGE}:1.0.1", DEV)
    promote_to(w, f"{IMAGE}:1.0.2", DEV)
    assert w.image_tags(DEV)["latest"] == c.digest

    since = len(w.events)
    prepared = prepare_rollback(w.settings, IMAGE, DEV, "1.0.1")
    assert (prepared.decision.outcome, prepared.decision.rollback) == (Outcome.TAG_MOVE, True)
    assert [(m.tag, m.old, m.new) for m in prepared.decision.moves] == [("1.0", c.digest, a.digest),
                                                                        ("latest", c.digest, a.digest)]
    done = carry_out(w.settings, prepared, by="tester")
    assert done.copy is None and done.moved == ("1.0", "latest")
    assert w.story(since) == ["ensure:dev", "attest:promotion", "tag:1.0", "tag:latest", "history:rollback"]
    assert w.image_tags(DEV) == {str(a.build): a.digest, "1.0.1": a.digest, "1.0": a.digest, "latest": a.digest,
                                 str(c.build): c.digest, "1.0.2": c.digest}
    assert done.record is not None and (done.record["action"], done.record["from"], done.record["to"]) \
        == ("rollback", "dev", "dev")
    assert [(g["name"], g["passed"]) for g in done.record["gates"]] == [
        ("signature", True), ("semver", True), ("approval", True), ("scan", True), ("smoke", True)]

    refused = prepare_rollback(w.settings, IMAGE, DEV, "1.0.2")  # forward is a promotion, not a rollback
    assert refused.decision.refused and any("going there is a promotion" in p for p in refused.decision.problems)
    with pytest.raises(GateFailed, match="rollback of spark-3.5 .* refused"):
        carry_out(w.settings, refused, by="tester")

    since = len(w.events)
    prepared = prepare(w.settings, f"{IMAGE}:1.0.2", DEV)
    assert prepared.decision.outcome is Outcome.TAG_MOVE
    done = carry_out(w.settings, prepared, by="tester")
    assert done.copy is None and done.moved == ("1.0", "latest")
    assert w.story(since) == ["ensure:dev", "sign:dev", "write", "attest:promotion", "tag:1.0", "tag:latest",
                              "history:promote"]
    assert w.image_tags(DEV)["latest"] == c.digest


@pytest.mark.parametrize("failing", ["signature", "scan", "smoke"])
def test_a_refused_gate_changes_nothing_in_the_target(w: World, failing: str) -> None:
    w.build("1.0.1", "a", "2025-01-01T00:00:00Z")
    w.verdicts[failing] = False
    prepared = prepare(w.settings, f"{IMAGE}:1.0.1", DEV)
    assert prepared.decision.outcome is Outcome.REFUSED
    assert prepared.decision.problems == [f"{failing}: {failing} fails (fake)"]
    with pytest.raises(GateFailed, match=f"(?s)promotion of spark-3.5 .* refused:.*{failing}: {failing} fails") as raised:
        carry_out(w.settings, prepared, by="tester")
    assert raised.value.hint == "nothing was changed in dev"
    with pytest.raises(GateFailed):
        promote(w.settings, f"{IMAGE}:1.0.1", DEV, by="tester")
    assert w[DEV].writes == [] and w.story() == [] and history.read(w.settings) == []


def test_prod_needs_a_named_approver_who_is_recorded_and_signatures_accumulate_along_the_way(w: World) -> None:
    a = w.build("1.0.1", "a", "2025-01-01T00:00:00Z")
    promote_to(w, f"{IMAGE}:1.0.1", DEV)
    promote_to(w, f"{IMAGE}:1.0.1", STAGING)
    refused = prepare(w.settings, f"{IMAGE}:1.0.1", PROD)
    assert refused.decision.problems == ["approval: prod needs a named approver: add --approved-by NAME"]
    assert w[PROD].writes == []
    done = carry_out(w.settings, prepare(w.settings, f"{IMAGE}:1.0.1", PROD, approved_by="alice"), by="tester")
    assert done.record is not None and done.record["approved_by"] == "alice"
    assert signers(w[PROD], w.repo, a.digest) == ["test", "dev", "staging", "prod"]
    assert w.image_tags(PROD)["latest"] == a.digest
    with pytest.raises(GateFailed, match="staging takes images from dev, not from test"):
        promote(w.settings, f"{IMAGE}:1.0.1", STAGING, src=TEST, by="tester")


def test_a_pre_release_gets_only_its_own_rolling_tag_and_no_smoke_attestation_in_the_target(w: World) -> None:
    a = w.build("1.3.0-rc.1", "a", "2025-01-01T00:00:00Z")
    done = carry_out(w.settings, prepare(w.settings, f"{IMAGE}:1.3.0-rc.1", DEV), by="tester")
    assert done.moved == (str(a.build), "1.3.0-rc.1")
    # Gates only read evidence: nothing is run, so the only attestation a promotion makes is its record.
    assert [e for e in w.events if e[0] == "attest"] == [("attest", "promotion", "dev", a.digest, False)]
    assert ("ensure", "dev", w.repo, ("1.3.0-rc.1",)) in w.events  # the lifecycle policy keeps what it points at


def test_a_failed_local_gate_checks_only_the_signature_and_lists_it_first(w: World) -> None:
    w.build("1.3.0-rc.1", "a", "2025-01-01T00:00:00Z")
    w.verdicts["signature"] = False
    prepared = prepare(w.settings, f"{IMAGE}:1.3.0-rc.1", PROD, src=TEST)
    names = [p.split(":")[0] for p in prepared.decision.problems]
    assert names == ["signature", "stage", "semver", "approval"]  # no scan or smoke evidence was read
    assert [c[0] for c in w.gate_calls] == ["signature"]


def test_an_interrupted_copy_is_finished_by_the_next_promotion(w: World) -> None:
    a = w.build("1.0.1", "a", "2025-01-01T00:00:00Z")
    for child in a.platforms.values():  # a copy killed after the platform manifests, before the index
        manifest = w[TEST].get_manifest(w.repo, str(child))
        for blob in manifest.blobs():
            w[DEV].push_blob(w.repo, w[TEST].get_blob(w.repo, blob))
        w[DEV].put_manifest(w.repo, str(child), manifest.raw, manifest.media_type)
    done = carry_out(w.settings, prepare(w.settings, f"{IMAGE}:1.0.1", DEV), by="tester")
    assert done.decision.outcome is Outcome.COPY and done.copy is not None
    assert (done.copy.blobs_present, done.copy.blobs_copied, done.copy.manifests_present,
            done.copy.manifests_written) == (4, 2, 2, 1)  # only the signature's blobs and the index were missing
    assert w.image_tags(DEV)["latest"] == a.digest


# ---- the target changing under a prepared promotion --------------------------------------------------------


def test_a_newer_build_landing_after_prepare_is_kept_when_carrying_out(w: World) -> None:
    a = w.build("1.0.1", "a", "2025-01-01T00:00:00Z")
    b = w.build("1.1.0", "b", "2025-02-01T00:00:00Z")
    prepared = prepare(w.settings, f"{IMAGE}:1.0.1", DEV)
    assert [m.tag for m in prepared.decision.moves] == [str(a.build), "1.0.1", "1.0", "latest"]
    promote_to(w, f"{IMAGE}:1.1.0", DEV)  # someone else, in between
    done = carry_out(w.settings, prepared, by="tester")
    assert done.decision.outcome is Outcome.COPY and done.moved == (str(a.build), "1.0.1", "1.0")
    assert done.decision.kept == (f"latest stays at 1.1.0 ({b.digest.short}), newer than 1.0.1",)
    assert w.image_tags(DEV)["latest"] == b.digest
    assert done.record is not None and [t["tag"] for t in done.record["tags"]] == [str(a.build), "1.0.1", "1.0"]


def test_the_same_promotion_landing_after_prepare_makes_carrying_out_a_noop(w: World) -> None:
    w.build("1.0.1", "a", "2025-01-01T00:00:00Z")
    prepared = prepare(w.settings, f"{IMAGE}:1.0.1", DEV)
    promote_to(w, f"{IMAGE}:1.0.1", DEV)
    since = len(w.events)
    done = carry_out(w.settings, prepared, by="tester")
    assert (done.decision.outcome, done.moved, done.copy) == (Outcome.NOOP, (), None)
    assert w.events[since:] == []


def test_a_build_tag_taken_by_another_digest_after_prepare_refuses_and_changes_nothing_more(w: World) -> None:
    a = w.build("1.0.1", "a", "2025-01-01T00:00:00Z")
    prepared = prepare(w.settings, f"{IMAGE}:1.0.1", DEV)
    intruder = push_image(w[DEV], w.repo, "1.0.1", seed="intruder", tags=(str(a.build),))
    since, writes = len(w.events), list(w[DEV].writes)
    with pytest.raises(GateFailed, match=f"build tag {a.build} in dev already points at {intruder.digest}"):
        carry_out(w.settings, prepared, by="tester")
    assert w.events[since:] == [] and w[DEV].writes == writes
    assert w.image_tags(DEV) == {str(a.build): intruder.digest}


def test_a_tag_moved_while_carrying_out_stops_the_tag_moves_there(w: World) -> None:
    """set_tags' compare-and-set: a tag that moved after the re-decision is not overwritten; the tags before it
    in the order have moved, and the run fails with what moved. What it leaves is asserted as it is today."""
    a = w.build("1.0.1", "a", "2025-01-01T00:00:00Z")
    b = w.build("1.1.0", "b", "2025-02-01T00:00:00Z")
    prepared = prepare(w.settings, f"{IMAGE}:1.0.1", DEV)

    def another_writer() -> None:  # another machine's promotion of b (this machine's lock does not see it)
        w.on_sign.clear()
        copy_image(w[TEST], w.repo, w[DEV], w.repo, b.digest)
        for tag in (str(b.build), "latest"):
            w[DEV].put_manifest(w.repo, tag, b.raw, OCI_INDEX)

    w.on_sign.append(another_writer)
    with pytest.raises(ServiceError, match=rf"spark-3.5:latest moved to {b.digest} while promoting \(expected no tag\); "
                                           rf"tags moved so far: {a.build}, 1.0.1, 1.0"):
        carry_out(w.settings, prepared, by="tester")
    assert w.image_tags(DEV) == {str(a.build): a.digest, "1.0.1": a.digest, "1.0": a.digest,
                                 str(b.build): b.digest, "latest": b.digest}
    assert [e[:2] for e in w.events if e[0] == "attest"] == [("attest", "promotion")]  # attested with all 4 tags
    assert [t["tag"] for t in w.predicates[0]["tags"]] == [str(a.build), "1.0.1", "1.0", "latest"]
    assert history.read(w.settings) == []  # but no history line for the 3 tags that did move
    rerun = prepare(w.settings, f"{IMAGE}:1.0.1", DEV)  # "run again to re-plan": it now looks done
    assert rerun.decision.outcome is Outcome.NOOP and rerun.decision.kept


# ---- releases: plan once, apply exactly that plan ------------------------------------------------------------

TEAM = "data-eng/etl-jobs"


def _release(w: World, *images: tuple[str, Pushed]) -> Release:
    return Release.model_validate({"schema": RELEASE_SCHEMA, "images": [
        {"name": name, "version": p.build.version, "build_tag": str(p.build), "digest": str(p.digest),
         "platforms": {str(k): str(v) for k, v in p.platforms.items()}} for name, p in images]})


def _build_team(w: World, version: str, seed: str) -> Pushed:
    repo = w.settings.repository(TEAM)
    image = push_image(w[TEST], repo, version, seed=seed)
    add_signature(w[TEST], repo, image.digest, "test")
    return image


def test_a_release_plan_survives_its_file_and_applies_copies_before_any_tag_moves(w: World) -> None:
    base, team = w.build("1.0.1", "a", "2025-01-01T00:00:00Z"), _build_team(w, "2.0.0", "t")
    plan = plan_release(w.settings, _release(w, (IMAGE, base), (TEAM, team)), DEV)
    assert [(i.image, i.outcome) for i in plan.images] == [(IMAGE, "copy"), (TEAM, "copy")]
    assert w.story() == []  # planning writes nothing
    again = PromotionPlan.model_validate(json.loads(json.dumps(plan.to_json())))  # through its file
    assert again == plan

    since = len(w.events)
    done = apply_plan(w.settings, again)

    assert [d.decision.edge.digest for d in done] == [base.digest, team.digest]
    story = w.story(since)
    first_tag = next(i for i, label in enumerate(story) if label.startswith("tag:"))
    assert all(not label.startswith("tag:") for label in story[:first_tag])
    assert story[:first_tag].count("attest:promotion") == 2 and story[:first_tag].count("sign:dev") == 2
    assert story[first_tag:] == ["tag:" + str(base.build), "tag:1.0.1", "tag:1.0", "tag:latest", "history:promote",
                                 "tag:" + str(team.build), "tag:2.0.0", "tag:2.0", "tag:latest", "history:promote"]
    assert w.image_tags(DEV)["latest"] == base.digest
    assert w[DEV].tags(w.settings.repository(TEAM))["latest"] == team.digest


def test_applying_a_plan_whose_tag_moved_since_refuses_names_the_tag_and_changes_nothing(w: World) -> None:
    old = w.build("1.0.1", "a", "2025-01-01T00:00:00Z")
    promote_to(w, f"{IMAGE}:1.0.1", DEV)
    new = w.build("1.0.2", "b", "2025-02-01T00:00:00Z")
    plan = plan_release(w.settings, _release(w, (IMAGE, new)), DEV)
    squatter = w.build("1.0.3", "c", "2025-03-01T00:00:00Z")
    promote_to(w, f"{IMAGE}:1.0.3", DEV)  # someone else moved `latest` after the plan was made
    before = dict(w.image_tags(DEV))
    since = len(w.events)

    with pytest.raises(GateFailed) as refused:
        apply_plan(w.settings, plan)

    assert f"tag latest in dev points at {squatter.digest.short}, the plan saw {old.digest.short}" \
        in refused.value.message
    assert w.story(since) == [] and w.image_tags(DEV) == before
    fresh = plan_release(w.settings, _release(w, (IMAGE, new)), DEV)
    (done,) = apply_plan(w.settings, fresh)
    assert done.moved == (str(new.build), "1.0.2") and w.image_tags(DEV)["latest"] == squatter.digest


def test_a_prod_plan_needs_an_approver_who_did_not_start_the_run(w: World,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    image = w.build("1.0.1", "a", "2025-01-01T00:00:00Z")
    promote_to(w, f"{IMAGE}:1.0.1", DEV)
    promote_to(w, f"{IMAGE}:1.0.1", STAGING, approved_by="carol")
    plan = plan_release(w.settings, _release(w, (IMAGE, image)), PROD)
    assert plan.approval_required and plan.images[0].outcome == "copy"
    approval = next(g for g in plan.images[0].gates if g.name == "approval")
    assert approval.passed and approval.evidence["pending"]

    with pytest.raises(GateFailed, match="needs a named approver"):
        apply_plan(w.settings, plan)
    monkeypatch.setenv("GITHUB_ACTOR", "alice")
    with pytest.raises(GateFailed, match="four eyes"):
        apply_plan(w.settings, plan, approved_by="alice")
    assert PROD not in {Environment(e[1]) for e in w.events if e[0] == "sign"}

    (done,) = apply_plan(w.settings, plan, approved_by="bob")
    assert done.record is not None and done.record["approved_by"] == "bob"
    assert {"name": "approval", "passed": True, "detail": "approved by bob", "evidence": {"approved_by": "bob"}} \
        in done.record["gates"]
    assert w.image_tags(PROD)["latest"] == image.digest


# ---- mount, don't copy ----------------------------------------------------------------------------------------


def test_a_team_image_promoted_after_its_base_mounts_the_bases_layers_from_the_bases_repository(w: World) -> None:
    base = w.build("1.0.1", "a", "2025-01-01T00:00:00Z")
    promote_to(w, f"{IMAGE}:1.0.1", DEV)
    cache = blob_cache_path(w.settings)
    assert cache.exists()
    for path in cache.parent.glob(cache.name + "*"):  # a fresh CI runner: only the image's label says where
        path.unlink()
    repo = w.settings.repository(TEAM)
    team = push_image(w[TEST], repo, "2.0.0", seed="t", labels={BASE_NAME: IMAGE},
                      below=layers_of(w[TEST], w.repo, base))
    add_signature(w[TEST], repo, team.digest, "test")
    since = len(w.events)

    done = carry_out(w.settings, prepare(w.settings, f"{TEAM}:2.0.0", DEV), by="tester")

    assert done.copy is not None
    mounts = [(e[2], e[3]) for e in w.events[since:] if e[0] == "mount"]
    assert mounts == [(repo, w.repo)] * 2  # the base's layer of each platform, from the base's repository
    signed = next(i for i, e in enumerate(w.events) if i >= since and e[0] == "sign")
    uploaded = [Digest(e[4]) for e in w.events[since:signed] if e[0] == "blob" and e[1] == w[DEV].registry]
    # each platform's config and own layer, and test's signature (payload and config): nothing of the base
    assert (done.copy.blobs_mounted, done.copy.blobs_copied, len(uploaded)) == (2, 6, 6)
    assert done.copy.bytes_copied == sum(len(w[DEV].get_blob(repo, d)) for d in uploaded)
    assert not any(w[DEV].blob_exists(w.repo, d) for d in uploaded)
    assert w.story(since)[:3] == ["ensure:dev", "mounting:dev", "write"]
    assert w[DEV].get_manifest(repo, str(team.digest)).raw == team.raw


def test_the_base_repository_is_read_from_the_label_and_only_for_a_base_of_ours(w: World) -> None:
    reg, repo = w[TEST], w.settings.repository(TEAM)
    for label, expected in [("spark-3.5", w.repo), ("127.0.0.1:15000/debian", None),
                            ("111100001111.dkr.ecr.eu-west-1.amazonaws.com/upstream/debian", None),
                            ("localhost/debian", None), ("Not A Name", None)]:
        image = push_image(reg, repo, "2.0.0", seed=label, labels={BASE_NAME: label}, tags=())
        assert base_repository(w.settings, reg, repo, image.digest) == expected, label
    unlabelled = push_image(reg, repo, "2.0.0", seed="none", tags=())
    assert base_repository(w.settings, reg, repo, unlabelled.digest) is None
