"""`moka-images promote | rollback`: move an image by digest to the next environment, gated and recorded."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.markup import escape

from moka_images.config.settings import Settings, load_settings
from moka_images.models import Environment
from moka_images.plan.promotion import Outcome
from moka_images.stages.promote.apply import COPY_WORKERS, Done, carry_out
from moka_images.stages.promote.prepare import Prepared, prepare, prepare_rollback, refusal


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
        console.print(f"  copied {s.blobs_copied} blob(s), {s.bytes_copied / 1e6:.1f} MB, mounted {s.blobs_mounted}, "
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
    settings = load_settings(profile=args.profile)
    target = Environment.parse(args.to)
    src = Environment.parse(args.source) if args.source else None
    prepared = prepare(settings, args.image, target, src=src, approved_by=args.approved_by)
    return _finish(args, settings, prepared)


def _cmd_rollback(args: argparse.Namespace) -> int:
    settings = load_settings(profile=args.profile)
    prepared = prepare_rollback(settings, args.image, Environment.parse(args.env), args.to,
                                approved_by=args.approved_by)
    return _finish(args, settings, prepared)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `promote` and `rollback`."""
    envs = [e.value for e in Environment]
    p = sub.add_parser("promote", help="copy an image by digest to the next environment, gated (dry run by default)")
    p.add_argument("image", metavar="IMAGE[:VERSION]", help="image name with a version, build tag or @digest "
                                                             "(default: latest)")
    p.add_argument("--to", required=True, choices=envs[1:], help="target environment")
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
