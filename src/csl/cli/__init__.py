"""The ``csl`` command line. Every stage reads params.yaml; ``key.path=value`` arguments
override any key for that invocation (``csl run`` writes them into params.yaml).

One module per command group: :mod:`csl.cli.stages` (the pipeline's stages, ``run``, ``params``,
``relog``), :mod:`csl.cli.data` (``shard``, ``fetch-data``), :mod:`csl.cli.methods`,
:mod:`csl.cli.registry` (``registry``, ``lineage``, ``reproduce``), :mod:`csl.cli.embed`, :mod:`csl.cli.k8s` and
:mod:`csl.cli.pipeline`. Each declares its parsers and runs its commands; the heavy imports are
made by the command that needs them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from csl.cli import data, embed, k8s, methods, pipeline, registry, stages
from csl.errors import CslError

GROUPS = (stages, data, methods, registry, embed, k8s, pipeline)

# optional dependency (top-level module) -> the extra that installs it (pyproject.toml)
EXTRAS = {"mlflow": "tracking", "dvc": "pipeline", "ruamel": "pipeline", "boto3": "s3", "botocore": "s3",
          "kfp": "kubeflow", "kubernetes": "kubeflow"}

EPILOG = """examples:
  csl run                                   # the whole pipeline through DVC (no-op when nothing changed)
  csl pretrain --variant simclr-small methods.simclr-small.train.epochs=2
  csl linear-eval --variant simclr-small
  csl fetch-data --repo https://git.example.com/ml/csl-data.git --rev v3   # DVC-versioned data/prepared
  csl register --variant simclr-small        # MLflow registry: csl-encoder-fashion-mnist-simclr-small
  csl lineage models:/csl-encoder-fashion-mnist-simclr-small@champion
  csl reproduce models:/csl-encoder-fashion-mnist-simclr-small@champion   # retrain it from its lineage
  csl embed models:/csl-encoder-fashion-mnist-simclr-small@champion images/ -o emb.parquet   # resumable
  csl k8s serve-manifest models:/csl-encoder-fashion-mnist-simclr-small@champion > isvc.yaml    # KServe
  csl params                                # print the resolved parameters
  csl methods                               # registered methods, components, and the variants here
  csl methods show byol                     # a method's defaults and the losses it takes
  csl k8s render --variant dino-small --nodes 4 --nproc-per-node 8 --gpus 8 --elastic > job.yaml
  csl k8s submit -f job.yaml --namespace ml    # create it, follow it to Succeeded or Failed
  csl pipeline submit --host http://127.0.0.1:8080 --data-repo https://git.example.com/ml/csl.git --data-rev v3
  csl pipeline schedule --host http://127.0.0.1:8080 --data-repo URL --cron "0 0 3 * * *"   # 03:00 daily
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
    for group in GROUPS:
        group.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    project = Path(args.project).resolve()
    params_path = (project / args.params) if not Path(args.params).is_absolute() else Path(args.params)
    try:
        for group in GROUPS:
            if args.command in group.COMMANDS:
                return int(group.run(args, project, params_path))
        raise CslError(f"unknown command {args.command!r}")  # argparse refuses it first
    except CslError as e:
        print(f"csl: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("csl: interrupted; completed outputs are intact (all writes are atomic)", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:
        extra = EXTRAS.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"csl: error: 'csl {args.command}' needs {e.name}, an optional dependency that is not installed: "
              f"pip install 'csl[{extra}]' (or 'csl[all]'; 'make setup' installs everything)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
