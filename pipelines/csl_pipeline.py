"""The csl pipeline for Kubeflow Pipelines: wiring only (the steps are components/).

prepare -> for each variant in parallel: pretrain -> linear-eval -> register -> report over all.

Parameters:
  params_yaml      the whole params.yaml as text (methods, eval, data; the variants' settings)
  variants         the method variants to run (keys of params.yaml's methods)
  tracking_uri     MLflow tracking URI for every step ("" = the pods' MLFLOW_TRACKING_URI)
"""


import sys
from pathlib import Path
from typing import List

from kfp import dsl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from components.csl_components import linear_eval, prepare, pretrain, register, report  # noqa: E402

NAME = "csl-pretrain-evaluate-register"


@dsl.pipeline(name=NAME, description="Contrastive SSL: prepare, pretrain, linear-eval and register each "
                                     "variant, report all")
def csl_pipeline(params_yaml: str, variants: List[str], tracking_uri: str = "") -> None:
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    prep = prepare(params_yaml=params_yaml, tracking_uri=tracking_uri, pipeline_run_id=run_id)
    with dsl.ParallelFor(variants) as variant:
        pre = pretrain(params_yaml=params_yaml, variant=variant, tracking_uri=tracking_uri, pipeline_run_id=run_id,
                       data=prep.outputs["data"])
        ev = linear_eval(params_yaml=params_yaml, variant=variant, tracking_uri=tracking_uri,
                         pipeline_run_id=run_id, data=prep.outputs["data"], encoder=pre.outputs["encoder"])
        register(params_yaml=params_yaml, variant=variant, tracking_uri=tracking_uri, pipeline_run_id=run_id,
                 data=prep.outputs["data"], run=ev.outputs["run"])
    report(params_yaml=params_yaml, tracking_uri=tracking_uri, pipeline_run_id=run_id, data=prep.outputs["data"],
           runs=dsl.Collected(ev.outputs["run"]))


def compile_to(path: str) -> None:
    from kfp import compiler

    compiler.Compiler().compile(csl_pipeline, package_path=path)


if __name__ == "__main__":
    compile_to(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).with_suffix(".yaml")))
