"""``csl k8s render | validate | submit | status | delete``: a variant's pretraining as a Kubeflow
PyTorchJob; ``csl k8s serve-manifest``: a registered encoder served by KServe."""

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
    kv = ks.add_parser("validate", help="validate a PyTorchJob or InferenceService YAML file offline")
    kv.add_argument("file")
    sm = ks.add_parser(
        "serve-manifest", help="a KServe InferenceService (+ ServiceAccount) serving a registered encoder",
        description="render the ServiceAccount and KServe InferenceService that serve a registered csl encoder "
                    "(model format mlflow, MLServer runtime, storage URI from the registry's artifact store), "
                    "validated offline against the InferenceService CRD and the runtime")
    sm.add_argument("model_uri", help="models:/NAME@ALIAS, models:/NAME/VERSION, or NAME")
    sm.add_argument("--name", help="InferenceService name (default: the registered model's name)")
    sm.add_argument("--namespace")
    sm.add_argument("--artifacts-destination", default="s3://csl-mlflow/artifacts",
                    help="the MLflow server's --artifacts-destination (k8s/mlflow's; default: %(default)s)")
    sm.add_argument("--storage-uri", help="use this storage URI instead of the registry's location")
    sm.add_argument("--s3-secret", default="csl-serving-s3", help="Secret with the S3 credentials (k8s/serving)")
    sm.add_argument("--service-account", default="csl-serving")
    sm.add_argument("--image", default="ghcr.io/csl-project/csl-serving:0.1.0", help="serving image (k8s/serving)")
    sm.add_argument("--runtime", default="kserve-mlserver")
    sm.add_argument("--cpu", default="1")
    sm.add_argument("--memory", default="2Gi")
    sm.add_argument("--gpus", type=int, default=0)
    sm.add_argument("--min-replicas", type=int, default=1)
    sm.add_argument("--max-replicas", type=int, default=1)
    sm.add_argument("-o", "--output", help="write to this file (atomically) instead of stdout")


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
        from csl.k8s.serving import validate_inference_service

        path = Path(args.file)
        if not path.is_file():
            raise ConfigError(f"{path} not found")
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        problems, kinds = [], []
        for doc in docs:
            if not isinstance(doc, dict):
                problems.append("not a YAML mapping")
                continue
            kinds.append(str(doc.get("kind")))
            if doc.get("kind") == "InferenceService":
                problems += validate_inference_service(doc)
            elif doc.get("kind") in ("ServiceAccount", "Secret") and doc.get("apiVersion") == "v1":
                problems += [f"{doc['kind']}: metadata.name is missing"] if not doc.get("metadata", {}).get("name") else []
            else:
                problems += validate(doc)
        for p in problems or ([] if docs else ["no YAML document"]):
            print(f"{path}: {p}", file=sys.stderr)
        if problems or not docs:
            return 2
        print(f"{path}: valid {', '.join(kinds)}")
        return 0
    if args.k8s_command == "serve-manifest":
        return _serve_manifest(args, project)
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


def _serve_manifest(args: argparse.Namespace, project: Path) -> int:
    import yaml

    from csl import tracking
    from csl.errors import ConfigError
    from csl.k8s import serving

    tracking.use_store(project)
    model = serving.lookup(args.model_uri)
    spec = serving.ServeSpec(name=args.name, namespace=args.namespace, artifacts_destination=args.artifacts_destination,
                             storage_uri=args.storage_uri, s3_secret=args.s3_secret,
                             service_account=args.service_account, image=args.image, runtime=args.runtime,
                             cpu=args.cpu, memory=args.memory, gpus=args.gpus, min_replicas=args.min_replicas,
                             max_replicas=args.max_replicas)
    docs = serving.render(model, spec)
    problems = serving.validate_inference_service(docs[-1])
    if problems:
        raise ConfigError("the rendered InferenceService is invalid: " + "; ".join(problems))
    header = (f"# KServe serving of models:/{model.name}/{model.version} (csl k8s serve-manifest).\n"
              f"# Needs the S3 credentials Secret {spec.s3_secret} (k8s/serving/s3-secret.yaml) in the namespace.\n")
    text = header + yaml.safe_dump_all(docs, sort_keys=False)
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
