"""``csl pipeline compile | submit | schedule``: the Kubeflow pipeline from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

COMMANDS = ("pipeline",)


def add_parsers(sub: Any) -> None:
    pl = sub.add_parser("pipeline", help="the Kubeflow pipeline (csl.kubeflow.pipeline; compiled: pipelines/csl_pipeline.yaml)")
    pls = pl.add_subparsers(dest="pipeline_command", required=True, metavar="ACTION")
    plc = pls.add_parser("compile", help="compile the pipeline to KFP IR YAML")
    plc.add_argument("-o", "--output", default="pipelines/csl_pipeline.yaml")
    pl_sub = pls.add_parser("submit", help="run the pipeline once on a Kubeflow Pipelines server",
                            description="compile the pipeline and create a run on a Kubeflow Pipelines API server, "
                                        "with this project's params.yaml; --wait follows it to the end")
    pl_sched = pls.add_parser("schedule", help="create a recurring run (cron) on a Kubeflow Pipelines server",
                              description="compile the pipeline and create a KFP recurring run with this project's "
                                          "params.yaml")
    for sp in (pl_sub, pl_sched):
        sp.add_argument("--host", required=True, help="Kubeflow Pipelines API URL, e.g. http://127.0.0.1:8080")
        sp.add_argument("--variant", action="append", dest="variants", metavar="V",
                        help="a variant to run (repeatable; default: params.yaml's variants)")
        sp.add_argument("--data-repo", default="", help="git URL whose dvc.lock versions data/prepared (pushed)")
        sp.add_argument("--data-rev", default="HEAD", help="git revision of --data-repo (default: %(default)s)")
        sp.add_argument("--allow-unversioned", action="store_true",
                        help="trial runs only: without --data-repo, prepare from params' data.source")
        sp.add_argument("--tracking-uri", default="", help="MLflow tracking URI for the steps (default: the "
                                                          "pods' MLFLOW_TRACKING_URI)")
        sp.add_argument("--launcher", choices=["local", "pytorchjob"], default="local",
                        help="pretrain in the step (local) or as a multi-node PyTorchJob")
        sp.add_argument("--job-nodes", type=int, default=2)
        sp.add_argument("--job-gpus-per-node", type=int, default=0)
        sp.add_argument("--job-image", default="ghcr.io/csl-project/csl:latest")
        sp.add_argument("--job-namespace", default="")
        sp.add_argument("--node-selector", action="append", default=[], metavar="KEY=VALUE",
                        help="nodeSelector of the training pods (repeatable), e.g. nvidia.com/gpu.present=true")
        sp.add_argument("--toleration", action="append", default=[], metavar="TAINT_KEY",
                        help="a taint the training pods tolerate (repeatable), e.g. nvidia.com/gpu")
        sp.add_argument("--experiment", default="csl", help="KFP experiment (created if missing)")
        sp.add_argument("--namespace", help="KFP namespace (multi-user deployments)")
        sp.add_argument("--service-account", default="csl-pipeline-runner",
                        help="Kubernetes service account of the steps (default: %(default)s, from k8s/kfp)")
        sp.add_argument("--token", help="bearer token for the KFP API (default: none)")
    pl_sub.add_argument("--run-name", help="default: csl-<variants>-<UTC time>")
    pl_sub.add_argument("--wait", action="store_true", help="follow the run to the end (exit 2 if it fails)")
    pl_sub.add_argument("--timeout", type=float, default=7 * 24 * 3600)
    pl_sub.add_argument("--poll", type=float, default=30.0)
    pl_sched.add_argument("--cron", required=True, help="6 fields, seconds first: '0 0 3 * * *' = 03:00 daily")
    pl_sched.add_argument("--name", default="csl-scheduled", help="recurring run name (default: %(default)s)")
    pl_sched.add_argument("--max-concurrency", type=int, default=1)


def run(args: argparse.Namespace, project: Path, params_path: Path) -> int:
    import tempfile
    import time

    from csl.errors import ConfigError

    from csl.kubeflow.pipeline import compile_to

    if args.pipeline_command == "compile":
        out = Path(args.output) if Path(args.output).is_absolute() else project / args.output
        compile_to(str(out))
        print(f"compiled {out}")
        return 0
    from csl.k8s import kfp_client
    from csl.params import load_params

    params = load_params(params_path)  # validated here, not in the first pod
    variants = args.variants or list(params.variants)
    for v in variants:
        params.variant(v)  # each must exist: the error lists the defined ones
    if not args.data_repo and not args.allow_unversioned:
        raise ConfigError("--data-repo is required: the pipeline runs on DVC-versioned data fetched by git revision "
                          "(or pass --allow-unversioned for a trial run)")
    if args.pipeline_command == "schedule":
        kfp_client.check_cron(args.cron)
    arguments = {"params_yaml": params_path.read_text(), "variants": variants, "data_repo": args.data_repo,
                 "data_rev": args.data_rev, "allow_unversioned": args.allow_unversioned,
                 "tracking_uri": args.tracking_uri, "launcher": args.launcher, "job_image": args.job_image,
                 "job_nodes": args.job_nodes, "job_gpus_per_node": args.job_gpus_per_node,
                 "job_namespace": args.job_namespace, "node_selector": _pairs(args.node_selector),
                 "tolerations": [{"key": k, "operator": "Exists", "effect": "NoSchedule"} for k in args.toleration]}
    with tempfile.TemporaryDirectory() as d:
        package = str(Path(d) / "csl_pipeline.yaml")
        compile_to(package)
        client = kfp_client.connect(args.host, args.namespace, args.token)
        if args.pipeline_command == "schedule":
            sub = kfp_client.schedule(client, package, arguments, args.experiment, args.name, args.cron,
                                      args.max_concurrency, args.namespace, args.service_account)
            print(f"scheduled {sub.name} ({args.cron}) in experiment {args.experiment}: recurring run {sub.id}\n"
                  f"  {sub.url}")
            return 0
        name = args.run_name or f"csl-{'-'.join(variants)[:40]}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        sub = kfp_client.submit(client, package, arguments, args.experiment, name, args.namespace,
                                args.service_account)
        print(f"submitted {sub.name} in experiment {args.experiment}: run {sub.id}\n  {sub.url}", flush=True)
        if args.wait:
            kfp_client.wait(client, sub.id, args.timeout, args.poll)
    return 0


def _pairs(items: list[str]) -> dict[str, str]:
    from csl.errors import ConfigError

    bad = [i for i in items if "=" not in i or not i.split("=", 1)[0]]
    if bad:
        raise ConfigError(f"--node-selector takes KEY=VALUE, got {bad[0]!r}")
    return dict(i.split("=", 1) for i in items)
