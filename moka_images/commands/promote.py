"""`moka-images promote | rollback`: move an image by digest to the next environment, gated and recorded."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from moka_images import log
from moka_images.config.release import PromotionPlan, load_plan, load_release
from moka_images.config.settings import Settings, load_settings
from moka_images.errors import ConfigError, GateFailed
from moka_images.models import Environment
from moka_images.plan.promotion import Outcome
from moka_images.stages.images import parse_spec
from moka_images.stages.promote.apply import COPY_WORKERS, Done, carry_out
from moka_images.stages.promote.prepare import Prepared, prepare, prepare_rollback, refusal
from moka_images.stages.promote.release import apply_plan, plan_release, to_plan


def render(prepared: Prepared, console: Console, done: Done | None = None) -> None:
    """The plan (or what was done) as people read it."""
    d = done.decision if done else prepared.decision
    e, c = d.edge, prepared.source.candidate
    what = "rollback" if d.rollback else "promote"
    where = f"in {e.dst_env}" if d.rollback else f"{e.src_env} -> {e.dst_env}"
    style = {Outcome.NOOP: "dim", Outcome.COPY: "bold cyan", Outcome.TAG_MOVE: "cyan", Outcome.REFUSED: "bold red"}
    console.print(escape(f"{what} {e.image} {c.build} {where}"), soft_wrap=True)
    console.print(escape(f"  from     {prepared.source.ref}  ({', '.join(prepared.source.platforms)})"),
                  soft_wrap=True)
    console.print(escape(f"  to       {prepared.destination}"), soft_wrap=True)
    label = {Outcome.NOOP: "already there (no-op)", Outcome.COPY: "copy", Outcome.TAG_MOVE: "move tags",
             Outcome.REFUSED: "REFUSED"}[d.outcome]
    console.print(f"  outcome  [{style[d.outcome]}]{label}[/]" + (" (done)" if done else " (plan)"))
    for g in d.gates:
        mark = "[green]✓[/]" if g.passed else "[bold red]✗[/]"
        console.print(f"  {mark} {g.name}: {escape(g.detail)}", soft_wrap=True)
    verb = "moved" if done else "moves"
    for m in () if d.refused else d.moves:
        console.print(escape(f"  tag {m.tag} {verb}: {m.old.short if m.old else 'new'} -> {m.new.short}"),
                      soft_wrap=True)
    for note in d.kept:
        console.print(escape(f"  tag {note}"), style="yellow", soft_wrap=True)
    if done and done.copy:
        s = done.copy
        console.print(f"  copied {s.blobs_copied} blob(s), {s.bytes_copied / 1e6:.1f} MB, mounted {s.blobs_mounted} "
                      f"({s.bytes_mounted / 1e6:.1f} MB not moved), "
                      f"{s.blobs_present} already there, {len(s.attachments)} cosign tag(s), in {s.seconds:.1f}s",
                      soft_wrap=True)
    if not done and not d.refused and d.outcome is not Outcome.NOOP:
        console.print("  nothing changed: add --confirm to carry this out", style="dim")


def _output(args: argparse.Namespace, prepared: Prepared, done: Done | None) -> None:
    if args.json:
        doc = {**(done.decision if done else prepared.decision).to_json(), "done": done is not None,
               "source": str(prepared.source.ref), "destination": prepared.destination,
               "build_tag": str(prepared.source.candidate.build), "platforms": list(prepared.source.platforms),
               "moved": list(done.moved) if done else [], "copy": done.copy.to_json() if done and done.copy else None}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        render(prepared, Console(highlight=False), done)


def _finish(args: argparse.Namespace, settings: Settings, prepared: Prepared) -> int:
    if prepared.decision.refused:
        _output(args, prepared, None)
        raise refusal(prepared)
    if not args.confirm:
        _output(args, prepared, None)
        return 0
    done = carry_out(settings, prepared, workers=args.jobs)
    _output(args, prepared, done)
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    if sum(map(bool, (args.image, args.release, args.apply))) != 1:
        raise ConfigError("give one of IMAGE[:VERSION|@DIGEST], --release FILE or --apply PLAN")
    if args.apply:
        return _apply(args, load_plan(args.apply))
    if args.image:
        parse_spec(args.image)  # a mistyped IMAGE is said before any service is asked
    if not args.to:
        raise ConfigError("--to ENV is required with IMAGE or --release", "the plan file names its target itself")
    release = load_release(args.release) if args.release else None  # read before any service is asked
    settings = load_settings(profile=args.profile)
    target = Environment.parse(args.to)
    src = Environment.parse(args.source) if args.source else None
    if release is None and not (args.plan_out or args.summary):
        prepared = prepare(settings, args.image, target, src=src, approved_by=args.approved_by)
        return _finish(args, settings, prepared)
    if release is not None:
        plan = plan_release(settings, release, target, src=src)
    else:
        one = prepare(settings, args.image, target, src=src, approval_deferred=True)
        plan = to_plan(settings, [one], one.decision.edge.src_env, target)
    return _planned(args, settings, plan)


def _planned(args: argparse.Namespace, settings: Settings, plan: PromotionPlan) -> int:
    """Write or show a plan; apply it at once only with --confirm (and no --plan-out: a written plan is
    applied by a later job, after its review)."""
    if args.plan_out:
        args.plan_out.write_text(json.dumps(plan.to_json(), indent=2) + "\n")
        log.info(f"plan written to {args.plan_out}: apply it with `moka-images promote --apply {args.plan_out} "
                 "--confirm`")
    if args.summary:
        args.summary.write_text(plan_markdown(plan))
    if args.json and not args.plan_out:
        sys.stdout.write(json.dumps(plan.to_json(), indent=2) + "\n")
    elif not args.json:
        log.console().print(plan_markdown(plan), markup=False, highlight=False)
    refused = [i.image for i in plan.images if i.outcome == Outcome.REFUSED.value]
    if refused:
        raise GateFailed(f"the plan refuses {', '.join(refused)}", "each refused gate says why above")
    if args.confirm and not args.plan_out:
        return _apply(args, plan)
    return 0


def _apply(args: argparse.Namespace, plan: PromotionPlan) -> int:
    settings = load_settings(profile=args.profile)
    if not args.confirm:
        log.console().print(plan_markdown(plan), markup=False, highlight=False)
        log.info("nothing changed: add --confirm to apply this plan")
        return 0
    done = apply_plan(settings, plan, approved_by=args.approved_by, workers=args.jobs)
    if args.json:
        sys.stdout.write(json.dumps([{**d.decision.to_json(), "moved": list(d.moved)} for d in done], indent=2) + "\n")
    for d in done:
        log.info(f"{d.decision.edge.image}@{d.decision.edge.digest.short} in {plan.target}: "
                 f"{', '.join(d.moved) or 'no tag moved'}")
    return 0


def plan_markdown(plan: PromotionPlan) -> str:
    """The plan for people (and a CI job summary): every image, gate and tag move, and what it was made from."""
    lines = [f"## Promotion plan: {plan.source} -> {plan.target}", "",
             f"Made {plan.made_at} by {plan.made_by}. Approval "
             + ("required: named when applied." if plan.approval_required else "not required."), "",
             "| image | build | digest | outcome | tag moves |", "|---|---|---|---|---|"]
    for i in plan.images:
        moves = ", ".join(f"{m.tag}: {(m.old or 'new')[:19]} -> {m.new[:19]}" for m in i.moves) or "none"
        lines.append(f"| {i.image} | {i.build_tag} | `{i.source.rsplit('@', 1)[-1]}` | {i.outcome} | {moves} |")
    for i in plan.images:
        lines += ["", f"### {i.image}", ""]
        lines += [f"- {'✓' if g.passed else '✗'} {g.name}: {g.detail}" for g in i.gates]
        lines += [f"- kept: {k}" for k in i.kept]
    return "\n".join(lines) + "\n"


def _cmd_rollback(args: argparse.Namespace) -> int:
    settings = load_settings(profile=args.profile)
    prepared = prepare_rollback(settings, args.image, Environment.parse(args.env), args.to,
                                approved_by=args.approved_by)
    return _finish(args, settings, prepared)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `promote` and `rollback`."""
    envs = [e.value for e in Environment]
    p = sub.add_parser("promote", help="copy an image by digest to the next environment, gated (dry run by default)")
    p.add_argument("image", nargs="?", metavar="IMAGE[:VERSION|@DIGEST]",
                   help="one image: a name with a version, build tag or @digest (a name alone: latest)")
    p.add_argument("--release", type=Path, metavar="FILE",
                   help="every image of a release file (`pipeline --json`), each by its digest")
    p.add_argument("--apply", type=Path, metavar="PLAN", help="apply a plan written by --plan-out, exactly as made")
    p.add_argument("--plan-out", type=Path, metavar="FILE",
                   help="write the plan (JSON, for --apply) instead of carrying it out")
    p.add_argument("--summary", type=Path, metavar="FILE", help="also write the plan as Markdown (a CI job summary)")
    p.add_argument("--to", choices=envs[1:], help="target environment (a plan names its own)")
    p.add_argument("--from", dest="source", choices=envs[:-1], help="source environment (default: the one before)")
    _common(p)
    p.set_defaults(func=_cmd_promote)
    r = sub.add_parser("rollback", help="point an environment's rolling tags back at an earlier promoted build")
    r.add_argument("image", metavar="IMAGE", help="image name, e.g. spark-3.5")
    r.add_argument("--env", required=True, choices=envs, help="environment to roll back")
    r.add_argument("--to", required=True, metavar="VERSION", help="the version (or build tag) to go back to")
    _common(r)
    r.set_defaults(func=_cmd_rollback)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--confirm", action="store_true", help="carry the plan out (without it nothing changes)")
    p.add_argument("--approved-by", metavar="NAME", help="the approver, required where the environment asks for one")
    p.add_argument("--jobs", type=int, default=COPY_WORKERS, metavar="N", help="blobs copied at once (default 4)")
    p.add_argument("--json", action="store_true", help="print the decision as JSON on stdout")
