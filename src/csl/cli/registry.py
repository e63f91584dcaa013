"""``csl registry list | show | promote``, ``csl lineage`` and ``csl reproduce``: the encoders in
the MLflow model registry, their lineage, and the proof of it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

COMMANDS = ("registry", "lineage", "reproduce")


def add_parsers(sub: Any) -> None:
    rg = sub.add_parser("registry", help="list, show or promote registered encoders (MLflow model registry)")
    rgs = rg.add_subparsers(dest="registry_command", required=True, metavar="ACTION")
    rgs.add_parser("list", help="every csl-encoder-* version with its alias, linear top-1, data md5, commit")
    rshow = rgs.add_parser("show", help="one version: NAME[@ALIAS|/VERSION] (NAME alone: the champion)")
    rshow.add_argument("ref")
    rprom = rgs.add_parser("promote", help="point an alias (default: champion) at NAME/VERSION")
    rprom.add_argument("ref")
    rprom.add_argument("--alias", default="champion")
    lin = sub.add_parser("lineage", help="the whole chain of a registered encoder: dataset, code, params, runs, metrics")
    lin.add_argument("model_uri", help="models:/NAME@ALIAS, models:/NAME/VERSION, or NAME")
    lin.add_argument("--json", action="store_true", help="print JSON")
    rep = sub.add_parser("reproduce", help="retrain a registered encoder from its lineage (recorded commit, data, "
                                          "parameters) in a scratch worktree and compare it with the registered one",
                         description="check out the model version's recorded git commit in a scratch worktree, "
                                     "restore its recorded data (DVC md5), rerun its pretraining with its recorded "
                                     "parameters, and report whether the new encoder equals the registered one. "
                                     "Exit 0: reproduced; exit 3: not reproduced; exit 2: cannot try")
    rep.add_argument("model_uri", help="models:/NAME@ALIAS, models:/NAME/VERSION, or NAME")
    rep.add_argument("--workdir", help="scratch directory (default: a temporary one, removed afterwards)")
    rep.add_argument("--keep", action="store_true", help="keep the scratch worktree")
    rep.add_argument("--atol", type=float, default=0.0,
                     help="largest weight difference still called reproduced when not bit-identical "
                          "(default: 0, bit-identical; the CPU default run is deterministic)")
    rep.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace, project: Path, params_path: Path) -> int:
    from csl import tracking
    from csl.tracking import model_registry as reg

    tracking.use_store(project)
    if args.command == "reproduce":
        from csl.stages import reproduce

        result = reproduce.reproduce(project, args.model_uri, workdir=Path(args.workdir) if args.workdir else None,
                                     keep=args.keep, atol=args.atol)
        print(json.dumps(result.as_dict(), indent=2, sort_keys=True) if args.json else result.text())
        return 0 if result.reproduced else 3
    if args.command == "lineage":
        chain = reg.lineage(args.model_uri)
        if args.json:
            print(json.dumps(chain, indent=2, sort_keys=True))
            return 0
        m, d, c = chain["model"], chain["dataset"], chain["code"]
        print(f"model     {m['uri']}  aliases: {', '.join(m['aliases']) or '-'}")
        print(f"          encoder sha256 {m['encoder_sha256']}")
        print(f"          champion decision (by {m.get('champion_metric') or 'linear_top1'}): {m['champion_decision']}")
        print(f"dataset   {d['name']} at {d['path']}  md5 {d['dvc_md5']}  remote {d['remote']}")
        if d.get("repo"):
            print(f"          fetched from {d['repo']} at git {d['rev']}")
        print(f"code      git {c['git_commit']}{' (dirty)' if c['git_dirty'] == 'True' else ''}"
              f"  fingerprint {c.get('fingerprint') or '-'}")
        print(f"params    sha256 {chain['params']['hash']}")
        print(f"pipeline  run {chain['pipeline_run'] or '-'}")
        w = chain.get("parent")
        print(f"parent    {w['model_version'] + ' (' + w['uri'] + ')' if w else 'none (random init)'}"
              + (f"  encoder sha256 {w['sha256'][:16]}" if w else ""))
        for stage, r in chain["stage_runs"].items():
            print(f"stage     {stage:<12} run {r['run_id']} {r['status']}")
        print("metrics   " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(chain["metrics"].items())))
        return 0
    if args.registry_command == "list":
        rows = reg.listing()
        if not rows:
            print(f"no csl encoders are registered in {tracking.tracking_uri(project)}")
            return 0
        print(f"{'name':<44} {'ver':>4} {'alias':<9} {'ranked by':<20} {'linear':>7}  {'data md5':<36} commit")
        for r in rows:
            ranked = f"{r['champion_metric']} {r['champion_value'][:6]}" if r["champion_metric"] else "-"
            print(f"{r['name']:<44} {r['version']:>4} {r['alias']:<9} {ranked:<20} {r['linear_top1'][:6] or '-':>7}  "
                  f"{r['data_md5']:<36} {r['commit']}")
        return 0
    if args.registry_command == "show":
        mv = reg.resolve(args.ref)
        print(f"models:/{mv.name}/{mv.version}  aliases: {', '.join(mv.aliases or []) or '-'}")
        for k, v in sorted(mv.tags.items()):
            print(f"  {k}: {v}")
        return 0
    mv = reg.promote(args.ref, args.alias)
    print(f"{args.alias} -> models:/{mv.name}/{mv.version}")
    return 0
