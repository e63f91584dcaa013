"""``csl prepare | pretrain | linear-eval | register | report | run | params | relog``: the
pipeline's stages (the entry points DVC and Kubeflow call) and the commands around them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from csl.evaluate.config import PROBES

COMMANDS = ("prepare", "pretrain", "features", "linear-eval", "probe", "finetune", "distill", "prepare-transfer",
            "transfer", "register", "report", "run", "params", "plan", "relog")
PLANNED = ("linear-eval", "probe", "finetune", "distill", "prepare-transfer", "transfer", "register", "report")


def add_parsers(sub: Any) -> None:
    def add(name: str, help_: str, variant: bool = False) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        if variant:
            sp.add_argument("--variant", required=True, help="method variant (a key of 'methods' in params.yaml)")
        sp.add_argument("overrides", nargs="*", metavar="key.path=value", help="override a parameter")
        return sp

    add("prepare", "read the dataset source and write the prepared dataset (data/prepared)")
    add("pretrain", "pretrain one method variant; write runs/<variant>/pretrain/encoder.pt", variant=True)
    add("features", "frozen features of the variant's encoder (and a random-init one) on every image, once: "
                    "runs/<variant>/features", variant=True)
    add("linear-eval", "linear and kNN top-1 of the frozen encoder and of a random-init baseline", variant=True)
    add("probe", "a protocol on the frozen features: " + "; ".join(f"{k}: {v.summary}" for k, v in PROBES.items()),
        variant=True).add_argument("--protocol", required=True, choices=list(PROBES))
    add("finetune", "fine-tune on a class-balanced fraction of the labels, beside a random-init baseline",
        variant=True).add_argument("--fraction", required=True, help="label fraction as params.yaml writes it (0.01)")
    add("distill", "self-distill the model fine-tuned on --fraction into a student trained without labels",
        variant=True).add_argument("--fraction", required=True, help="label fraction of the teacher (0.01)")
    add("prepare-transfer", "prepare a transfer target of eval.transfer.datasets into data/transfer/<target>") \
        .add_argument("--target", required=True)
    add("transfer", "linear and kNN top-1 of the frozen encoder on a transfer target", variant=True) \
        .add_argument("--target", required=True)
    add("register", "register the variant's encoder in the MLflow registry with its lineage; move 'champion' "
                    "only when it beats the champion on the same data", variant=True)
    add("report", "write reports/report.html and report.md for all variants")
    r = add("run", "run the whole pipeline through DVC (only what changed) under one MLflow parent run; "
                   "every variant ends registered in the store configured now")
    r.add_argument("--force", action="store_true", help="rerun every stage")
    add("params", "print the fully resolved parameters as YAML")
    add("plan", "write plan.yaml: the evaluation stages DVC plans for this data (csl run does it too)")
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
    if args.command in PLANNED and not args.overrides:  # DVC's stage commands: the plan must be params.yaml's
        from csl.stages import plan

        plan.check(project, params)
    if args.command == "plan":
        from csl.stages import plan

        if args.overrides:  # the plan DVC reads is params.yaml's: show this one, write nothing
            print(f"not written (overrides given; 'csl run {' '.join(args.overrides)}' records them and writes "
                  "the plan):")
        else:
            changed = plan.write(project, params)
            print(f"{'wrote' if changed else 'up to date:'} {project / plan.PLAN}")
        print(plan.render(params), end="")
    elif args.command == "params":
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
    elif args.command == "features":
        from csl.stages import features

        features.main(params, project, params.variant(args.variant))
    elif args.command == "probe":
        from csl.stages import probe

        probe.main(params, project, params.variant(args.variant), args.protocol)
    elif args.command == "finetune":
        from csl.stages import finetune

        finetune.main(params, project, params.variant(args.variant), _fraction(args.fraction))
    elif args.command == "distill":
        from csl.stages import distill

        distill.main(params, project, params.variant(args.variant), _fraction(args.fraction))
    elif args.command == "prepare-transfer":
        from csl.stages import transfer

        transfer.prepare_main(params, project, args.target)
    elif args.command == "transfer":
        from csl.stages import transfer

        transfer.main(params, project, params.variant(args.variant), args.target)
    elif args.command == "register":
        from csl.stages import register

        register.main(params, project, params.variant(args.variant))  # an unknown name: the error lists them
    elif args.command == "report":
        from csl.stages import report

        report.main(params, project)
    return 0


def _fraction(text: str) -> str:
    """A label fraction as given (its text names the output directory, as DVC writes it)."""
    from csl.errors import ConfigError

    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--fraction must be a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise ConfigError(f"--fraction must be in (0, 1], got {text}")
    return text
