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
  csl fetch-data --repo https://git.example.com/ml/csl-data.git --rev v3   # DVC-versioned data/prepared
  csl register --variant simclr-small        # MLflow registry: csl-encoder-fashion-mnist-simclr-small
  csl lineage models:/csl-encoder-fashion-mnist-simclr-small@champion
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

    def add(name: str, help_: str, variant: bool = False) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        if variant:
            sp.add_argument("--variant", required=True, help="method variant (a key of 'methods' in params.yaml)")
        sp.add_argument("overrides", nargs="*", metavar="key.path=value", help="override a parameter")
        return sp

    add("prepare", "read the dataset source and write the prepared dataset (data/prepared)")
    sh = sub.add_parser("shard", help="write an ImageFolder (dir or zip) of JPEGs as WebDataset tar shards, "
                                     "locally or to s3:// (the streaming path for datasets larger than memory)")
    sh.add_argument("--source", required=True, help="ImageFolder directory or zip")
    sh.add_argument("--out", required=True, help="output directory or s3://BUCKET/PREFIX")
    sh.add_argument("--split", default="train")
    sh.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default: %(default)s)")
    fd = sub.add_parser("fetch-data", help="fetch the DVC-versioned prepared dataset of a git revision from its "
                                          "DVC remote (verified; refuses unversioned data)")
    fd.add_argument("--repo", required=True, help="git repository URL or local clone holding dvc.lock")
    fd.add_argument("--rev", default="HEAD", help="git revision (default: %(default)s)")
    fd.add_argument("--path", default="data/prepared", help="DVC-tracked path in the repository")
    fd.add_argument("--no-track", action="store_true", help="log no MLflow run (the pods of a job: the pipeline's "
                                                           "prepare step logged it)")
    add("pretrain", "pretrain one method variant; write runs/<variant>/pretrain/encoder.pt", variant=True)
    add("linear-eval", "linear and kNN top-1 of the frozen encoder and of a random-init baseline", variant=True)
    add("register", "register the variant's encoder in the MLflow registry with its lineage; move 'champion' "
                    "only when it beats the champion on the same data", variant=True)
    add("report", "write reports/report.html and report.md for all variants")
    r = add("run", "run the whole pipeline through DVC (only what changed) under one MLflow parent run")
    r.add_argument("--force", action="store_true", help="rerun every stage")
    add("params", "print the fully resolved parameters as YAML")
    sub.add_parser("relog", help="log the stage runs the MLflow server missed (kept in .csl/pending-tracking)",
                   description="log the stage runs whose tracking server became unreachable mid-stage; their "
                               "results were written locally and kept in .csl/pending-tracking")
    m = sub.add_parser("methods", help="list methods, components and the variants in params.yaml",
                       description="list methods, components and the variants in params.yaml; "
                                   "'csl methods show NAME' prints a method's defaults or a variant's composition")
    m.add_argument("action", nargs="?", choices=["show"], help="show one method or variant")
    m.add_argument("name", nargs="?", help="method or variant name (with 'show')")
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
    from csl import cli_pipeline

    cli_pipeline.add_parser(sub)
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
    return p


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
        if args.command == "k8s":
            return _k8s(args, params_path)
        if args.command == "relog":
            from csl import tracking

            todo = tracking.pending(project)
            if not todo:
                print("nothing to re-log: every stage run reached the tracking server")
                return 0
            for name, run_id in tracking.relog(project):
                print(f"re-logged {name} as run {run_id} in {tracking.tracking_uri(project)}")
            return 0
        if args.command == "shard":
            import tempfile

            from csl.data import shards

            classes, samples = shards.imagefolder_samples(Path(args.source), args.split)
            with tempfile.TemporaryDirectory() as d:
                local = Path(d) / "shards" if args.out.startswith("s3://") else Path(args.out)
                index = shards.write_shards(samples, classes, local, args.shard_size, args.split)
                if args.out.startswith("s3://"):
                    from csl.io import s3

                    s3.upload_dir(local, args.out)
            print(f"wrote {index['num_samples']} {args.split} images in {len(index['shards'])} shards to {args.out}")
            return 0
        if args.command == "fetch-data":
            from csl.stages import prepare

            prepare.fetch_main(load_params(params_path), project, args.repo, args.rev, args.path, track=not args.no_track)
            return 0
        if args.command == "pipeline":
            from csl import cli_pipeline

            return cli_pipeline.run(args, project, params_path)
        if args.command in ("registry", "lineage"):
            return _registry(args, project)
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
        elif args.command == "register":
            from csl.stages import register

            params.method(args.variant)
            register.main(params, project, args.variant)
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


def _k8s(args: argparse.Namespace, params_path: Path) -> int:
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


def _registry(args: argparse.Namespace, project: Path) -> int:
    import json

    from csl import tracking
    from csl.tracking import model_registry as reg

    tracking.use_store(project)
    if args.command == "lineage":
        chain = reg.lineage(args.model_uri)
        if args.json:
            print(json.dumps(chain, indent=2, sort_keys=True))
            return 0
        m, d, c = chain["model"], chain["dataset"], chain["code"]
        print(f"model     {m['uri']}  aliases: {', '.join(m['aliases']) or '-'}")
        print(f"          champion decision: {m['champion_decision']}")
        print(f"dataset   {d['name']} at {d['path']}  md5 {d['dvc_md5']}  remote {d['remote']}")
        if d.get("repo"):
            print(f"          fetched from {d['repo']} at git {d['rev']}")
        print(f"code      git {c['git_commit']}{' (dirty)' if c['git_dirty'] == 'True' else ''}")
        print(f"params    sha256 {chain['params']['hash']}")
        print(f"pipeline  run {chain['pipeline_run'] or '-'}")
        for stage, r in chain["stage_runs"].items():
            print(f"stage     {stage:<12} run {r['run_id']} {r['status']}")
        print("metrics   " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(chain["metrics"].items())))
        return 0
    if args.registry_command == "list":
        rows = reg.listing()
        print(f"{'name':<44} {'ver':>4} {'alias':<9} {'linear':>7}  {'data md5':<36} commit")
        for r in rows:
            print(f"{r['name']:<44} {r['version']:>4} {r['alias']:<9} {r['linear_top1'][:6]:>7}  {r['data_md5']:<36} "
                  f"{r['commit']}")
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


def _render(args: argparse.Namespace, params_path: Path) -> dict:
    from csl.errors import ConfigError
    from csl.k8s.render import JobSpec, render
    from csl.k8s.validate import validate
    from csl.params import load_params

    load_params(params_path).method(args.variant)  # the variant must exist here
    job = render(JobSpec(variant=args.variant, image=args.image, nodes=args.nodes,
                         nproc_per_node=args.nproc_per_node, gpus_per_node=args.gpus, cpu=args.cpu,
                         memory=args.memory, elastic=args.elastic, max_restarts=args.max_restarts, pvc=args.pvc,
                         namespace=args.namespace, name=args.name))
    problems = validate(job)
    if problems:  # a bug in the renderer, not user input
        raise ConfigError("rendered job is invalid: " + "; ".join(problems))
    return job


if __name__ == "__main__":
    sys.exit(main())
