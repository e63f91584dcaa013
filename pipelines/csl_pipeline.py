"""The csl pipeline for Kubeflow Pipelines: wiring only (the steps are components/).

prepare -> for each variant in parallel: pretrain -> linear-eval -> register -> report over all;
an exit handler (cleanup) runs however the pipeline ends.

Parameters:
  params_yaml        the whole params.yaml as text (methods, eval, storage; the variants' settings)
  variants           the method variants to run (keys of params.yaml's methods)
  data_repo          git repository (URL) whose dvc.lock versions data/prepared, pushed to its DVC remote
  data_rev           git revision of data_repo (tag, branch or commit; default HEAD)
  allow_unversioned  only for trial runs: without data_repo, prepare from params' data.source
  tracking_uri       MLflow tracking URI for every step ("" = the pods' MLFLOW_TRACKING_URI)
  launcher           "local": pretrain in the step; "pytorchjob": a multi-node PyTorchJob per variant
  job_image          the image the PyTorchJob pods run (the Dockerfile's)
  job_nodes          pods per PyTorchJob (1 Master + job_nodes-1 Workers)
  job_gpus_per_node  GPUs per pod (0: CPU; one process per GPU)
  job_namespace      namespace of the PyTorchJobs ("" = the step's own)
"""


import sys
from pathlib import Path
from typing import List

from kfp import dsl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from components.csl_components import (  # noqa: E402
    IMAGE,
    cleanup,
    linear_eval,
    prepare,
    pretrain,
    register,
    report,
)

NAME = "csl-pretrain-evaluate-register"


@dsl.pipeline(name=NAME, description="Contrastive SSL: prepare, pretrain, linear-eval and register each "
                                     "variant, report all")
def csl_pipeline(params_yaml: str, variants: List[str], data_repo: str = "", data_rev: str = "HEAD",
                 allow_unversioned: bool = False, tracking_uri: str = "", launcher: str = "local",
                 job_image: str = IMAGE, job_nodes: int = 2, job_gpus_per_node: int = 0,
                 job_namespace: str = "") -> None:
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    common = {"params_yaml": params_yaml, "tracking_uri": tracking_uri, "pipeline_run_id": run_id}
    exit_task = cleanup(**common, launcher=launcher, job_namespace=job_namespace).set_caching_options(False)
    with dsl.ExitHandler(exit_task, name="csl-run"):
        prep = prepare(**common, data_repo=data_repo, data_rev=data_rev, allow_unversioned=allow_unversioned)
        data = prep.outputs["data"]
        with dsl.ParallelFor(variants) as variant:
            pre = pretrain(**common, variant=variant, data=data, launcher=launcher, data_repo=data_repo,
                           data_rev=data_rev, job_image=job_image, job_nodes=job_nodes,
                           job_gpus_per_node=job_gpus_per_node, job_namespace=job_namespace)
            ev = linear_eval(**common, variant=variant, data=data, encoder=pre.outputs["encoder"])
            reg = register(**common, variant=variant, data=data, run=ev.outputs["run"])
        report(**common, data=data, runs=dsl.Collected(ev.outputs["run"]), registered=dsl.Collected(reg.output))


def compile_to(path: str) -> None:
    from kfp import compiler

    compiler.Compiler().compile(csl_pipeline, package_path=path)


if __name__ == "__main__":
    compile_to(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).with_suffix(".yaml")))
