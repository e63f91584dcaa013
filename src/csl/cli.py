"""The ``csl`` command line. Every stage reads params.yaml; ``key.path=value`` arguments
override any key for that invocation (``csl run`` writes them into params.yaml)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from csl.errors import CslError

EPILOG = """examples:
  csl run                                   # the whole pipeline through DVC (no-op when nothing changed)
  csl pretrain --variant simclr-small methods.simclr-small.train.epochs=2
  csl linear-eval --variant simclr-small
  csl params                                # print the resolved parameters
  csl methods                               # registered methods, components, and the variants here
  csl methods show byol                     # a method's defaults and the losses it takes
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="csl",
        description="Contrastive self-supervised learning: prepare -> pretrain -> linear-eval -> report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--params", default="params.yaml", help="parameters file (default: %(default)s)")
    p.add_argument("--project", default=".", help="project directory (default: current directory)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str, variant: bool = False) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        if variant:
            sp.add_argument("--variant", required=True, help="method variant (a key of 'methods' in params.yaml)")
        sp.add_argument("overrides", nargs="*", metavar="key.path=value", help="override a parameter")
        return sp

    add("prepare", "read the dataset source and write the prepared dataset (data/prepared)")
    add("pretrain", "pretrain one method variant; write runs/<variant>/pretrain/encoder.pt", variant=True)
    add("linear-eval", "linear and kNN top-1 of the frozen encoder and of a random-init baseline", variant=True)
    add("report", "write reports/report.html and report.md for all variants")
    r = add("run", "run the whole pipeline through DVC (only what changed) under one MLflow parent run")
    r.add_argument("--force", action="store_true", help="rerun every stage")
    add("params", "print the fully resolved parameters as YAML")
    m = sub.add_parser("methods", help="list methods, components and the variants in params.yaml",
                       description="list methods, components and the variants in params.yaml; "
                                   "'csl methods show NAME' prints a method's defaults or a variant's composition")
    m.add_argument("action", nargs="?", choices=["show"], help="show one method or variant")
    m.add_argument("name", nargs="?", help="method or variant name (with 'show')")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    project = Path(args.project).resolve()
    params_path = (project / args.params) if not Path(args.params).is_absolute() else Path(args.params)
    try:
        from csl.params import load_params

        if args.command == "run":
            from csl.stages import run

            run.run(project, params_path, args.overrides, force=args.force)
            return 0
        if args.command == "methods":
            from csl import catalog
            from csl.errors import ConfigError

            variants = load_params(params_path).methods if params_path.is_file() else None
            if args.action == "show":
                if not args.name:
                    raise ConfigError("usage: csl methods show NAME (a method or a variant in params.yaml)")
                print(catalog.show(args.name, variants))
            else:
                print(catalog.listing(variants))
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

            params.method(args.variant)
            pretrain.main(params, project, args.variant)
        elif args.command == "linear-eval":
            from csl.stages import linear_eval

            params.method(args.variant)
            linear_eval.main(params, project, args.variant)
        elif args.command == "report":
            from csl.stages import report

            report.main(params, project)
        return 0
    except CslError as e:
        print(f"csl: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("csl: interrupted; completed outputs are intact (all writes are atomic)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
