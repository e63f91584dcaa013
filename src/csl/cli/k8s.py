"""``csl k8s render | validate | submit | status | delete``: a variant's pretraining as a Kubeflow
PyTorchJob."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

COMMANDS = ("k8s",)


def add_parsers(sub: Any) -> None:
    k = sub.add_parser("k8s", help="render, validate, submit and follow a Kubeflow PyTorchJob for pretraining",
                       description="render a variant's pretraining as a Kubeflow PyTorchJob (validated offline "
                                   "against the CRD schema and the operator's webhook rules), or validate a file")
    ks = k.add_subparsers(dest="k8s_command", required=True, metavar="ACTION")
    kr = ks.add_parser("render", help="print the PyTorchJob YAML for a variant")
    _job_options(kr)
    kr.add_argument("-o", "--output", help="write to this file (atomically) instead of stdout")
    ksub = ks.add_parser("submit", help="create the PyTorchJob through the Kubernetes API, wait, report its status",
                         description="create a variant's PyTorchJob (or a YAML file's) through the Kubernetes API, "
                                     "then follow it to Succeeded (exit 0) or Failed (exit 2, with the reason)")
    src = ksub.add_mutually_exclusive_group(required=True)
    src.add_argument("--variant", help="render this variant's job (options as for render)")
    src.add_argument("-f", "--file", help="submit this PyTorchJob YAML instead")
    _job_options(ksub, variant=False)
    _cluster_options(ksub)
    ksub.add_argument("--no-wait", action="store_true", help="return after creating the job")
    ksub.add_argument("--timeout", type=float, default=24 * 3600, help="seconds to wait (default: a day)")
    ksub.add_argument("--poll", type=float, default=10.0, help="seconds between status reads (default: 10)")
    for action, help_ in (("status", "print a PyTorchJob's state and replica counts"),
                          ("delete", "delete a PyTorchJob and its pods")):
        ka = ks.add_parser(action, help=help_)
        ka.add_argument("name")
        _cluster_options(ka)
    kv = ks.add_parser("validate", help="validate a PyTorchJob YAML file offline")
    kv.add_argument("file")


def _job_options(p: argparse.ArgumentParser, variant: bool = True) -> None:
    if variant:
        p.add_argument("--variant", required=True)
    p.add_argument("--nodes", type=int, default=2, help="pods: 1 Master + nodes-1 Workers (default: 2)")
    p.add_argument("--nproc-per-node", type=int, default=1, help="processes per pod (one per GPU)")
    p.add_argument("--gpus", type=int, default=0, help="GPUs per pod (default: 0, CPU training)")
    p.add_argument("--cpu", default="4", help="CPU request and limit per pod")
    p.add_argument("--memory", default="16Gi", help="memory request and limit per pod")
    p.add_argument("--image", default="ghcr.io/csl-project/csl:latest")
    p.add_argument("--elastic", action="store_true", help="add an elasticPolicy (torchrun restarts on failure)")
    p.add_argument("--max-restarts", type=int, default=3)
    p.add_argument("--pvc", default="csl-workspace", help="PersistentVolumeClaim holding the project")
    p.add_argument("--name", help="job name (default: csl-pretrain-<variant>)")
    p.add_argument("--namespace")


def _cluster_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster account, $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context")
    if not any(a.dest == "namespace" for a in p._actions):
        p.add_argument("--namespace")


def run(args: argparse.Namespace, project: Path, params_path: Path) -> int:
    import yaml

    from csl.errors import ConfigError
    from csl.k8s.validate import validate

    if args.k8s_command == "validate":
        path = Path(args.file)
        if not path.is_file():
            raise ConfigError(f"{path} not found")
        job = yaml.safe_load(path.read_text())
        problems = validate(job) if isinstance(job, dict) else ["not a YAML mapping"]
        for p in problems:
            print(f"{path}: {p}", file=sys.stderr)
        if problems:
            return 2
        print(f"{path}: valid PyTorchJob")
        return 0
    if args.k8s_command in ("status", "delete"):
        from csl.k8s import submit as k8s

        objs = k8s.api(args.kubeconfig, args.context)
        ns = args.namespace or "default"
        if args.k8s_command == "delete":
            k8s.delete(objs, args.name, ns)
            print(f"deleted PyTorchJob {ns}/{args.name}")
            return 0
        st = k8s.status(objs, args.name, ns)
        print(st.line())
        return 2 if st.phase == "Failed" else 0
    if args.k8s_command == "submit" and args.file:
        path = Path(args.file)
        if not path.is_file():
            raise ConfigError(f"{path} not found")
        job = yaml.safe_load(path.read_text())
        if not isinstance(job, dict):
            raise ConfigError(f"{path} is not a YAML mapping")
    else:
        job = _render(args, params_path)
    if args.k8s_command == "submit":
        from csl.k8s import submit as k8s

        objs = k8s.api(args.kubeconfig, args.context)
        st = k8s.submit(objs, job, args.namespace or "default")
        print(f"created PyTorchJob {st.namespace or args.namespace or 'default'}/{st.name}", flush=True)
        if not args.no_wait:
            k8s.wait(objs, st.name, st.namespace or args.namespace or "default", args.timeout, args.poll)
        return 0
    text = yaml.safe_dump(job, sort_keys=False)
    if args.output:
        from csl.io import atomic_write_bytes

        atomic_write_bytes(Path(args.output), text.encode())
    else:
        print(text, end="")
    return 0


def _render(args: argparse.Namespace, params_path: Path) -> dict:
    from csl.errors import ConfigError
    from csl.k8s.render import JobSpec, render
    from csl.k8s.validate import validate
    from csl.params import load_params

    load_params(params_path).variant(args.variant)  # the variant must exist here
    job = render(JobSpec(variant=args.variant, image=args.image, nodes=args.nodes,
                         nproc_per_node=args.nproc_per_node, gpus_per_node=args.gpus, cpu=args.cpu,
                         memory=args.memory, elastic=args.elastic, max_restarts=args.max_restarts, pvc=args.pvc,
                         namespace=args.namespace, name=args.name))
    problems = validate(job)
    if problems:  # a bug in the renderer, not user input
        raise ConfigError("rendered job is invalid: " + "; ".join(problems))
    return job
