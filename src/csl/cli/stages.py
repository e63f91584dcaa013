"""``csl prepare | pretrain | linear-eval | register | report | run | params | relog``: the
pipeline's stages (the entry points DVC and Kubeflow call) and the commands around them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

COMMANDS = ("prepare", "pretrain", "linear-eval", "register", "report", "run", "params", "relog")


def add_parsers(sub: Any) -> None:
    def add(name: str, help_: str, variant: bool = False) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        if variant:
            sp.add_argument("--variant", required=True, help="method variant (a key of 'methods' in params.yaml)")
        sp.add_argument("overrides", nargs="*", metavar="key.path=value", help="override a parameter")
        return sp

    add("prepare", "read the dataset source and write the prepared dataset (data/prepared)")
    add("pretrain", "pretrain one method variant; write runs/<variant>/pretrain/encoder.pt", variant=True)
    add("linear-eval", "linear and kNN top-1 of the frozen encoder and of a random-init baseline", variant=True)
    add("register", "register the variant's encoder in the MLflow registry with its lineage; move 'champion' "
                    "only when it beats the champion on the same data", variant=True)
    add("report", "write reports/report.html and report.md for all variants")
    r = add("run", "run the whole pipeline through DVC (only what changed) under one MLflow parent run; "
                   "every variant ends registered in the store configured now")
    r.add_argument("--force", action="store_true", help="rerun every stage")
    add("params", "print the fully resolved parameters as YAML")
    sub.add_parser("relog", help="log the stage runs the MLflow server missed (kept in .csl/pending-tracking)",
                   description="log the stage runs whose tracking server became unreachable mid-stage; their "
                               "results were written locally and kept in .csl/pending-tracking")


def run(args: argparse.Namespace, project: Path, params_path: Path) -> int:
    from csl.params import load_params

    if args.command == "run":
        from csl.stages import run as pipeline

        pipeline.run(project, params_path, args.overrides, force=args.force)
        return 0
    if args.command == "relog":
        from csl import tracking

        if not tracking.pending(project):
            print("nothing to re-log: every stage run reached the tracking server")
            return 0
        for name, run_id in tracking.relog(project):
            print(f"re-logged {name} as run {run_id} in {tracking.tracking_uri(project)}")
        return 0
    params = load_params(params_path, args.overrides)
    if args.command == "params":
        import yaml

        print(yaml.safe_dump(params.as_dict(), sort_keys=False), end="")
    elif args.command == "prepare":
        from csl.stages import prepare

        prepare.main(params, project)
    elif args.command == "pretrain":
        from csl.stages import pretrain

        pretrain.main(params, project, params.variant(args.variant))  # an unknown name: the error lists them
    elif args.command == "linear-eval":
        from csl.stages import linear_eval

        linear_eval.main(params, project, params.variant(args.variant))  # an unknown name: the error lists them
    elif args.command == "register":
        from csl.stages import register

        register.main(params, project, params.variant(args.variant))  # an unknown name: the error lists them
    elif args.command == "report":
        from csl.stages import report

        report.main(params, project)
    return 0
