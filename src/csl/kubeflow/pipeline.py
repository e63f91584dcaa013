"""The csl pipeline for Kubeflow Pipelines: wiring only (the steps are :mod:`csl.kubeflow.components`;
compiled by ``csl pipeline compile`` to the golden file ``pipelines/csl_pipeline.yaml``).

prepare -> for each variant in parallel: pretrain -> features; then every evaluation protocol item
that needs only the encoder and runs on this data (``csl.stages.plan``: linear-eval of each variant
when the data has labels, variants x probes, fine-tuning fractions and transfer targets, as DVC fans
them out; a label-based protocol on data without labels is no task) in parallel, each its own task; then
distillation (its teachers are the fine-tuned models); then register (champion by
``eval.champion_metric``) -> report over all; every stage its own MLflow child run; an exit handler
(cleanup) runs however the pipeline ends.

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
  node_selector      nodeSelector of the training pods (pretrain/linear-eval steps and PyTorchJob pods),
                     e.g. {"nvidia.com/gpu.present": "true"}; {} = any node
  tolerations        tolerations of those pods, e.g. [{"key": "nvidia.com/gpu", "operator": "Exists",
                     "effect": "NoSchedule"}]; [] = none

Every step reads the ConfigMap ``csl-settings`` (MLflow URI, S3 endpoint, storage URIs) and the
Secret ``csl-credentials`` (S3 keys for DVC and checkpoints) as environment variables; run it with
the service account ``csl-pipeline-runner`` (k8s/kfp: both, and the RBAC the launcher needs).
"""


from typing import List

from kfp import dsl, kubernetes

from csl.kubeflow.components import (
    IMAGE,
    cleanup,
    distill,
    evaluate,
    features,
    plan,
    prepare,
    pretrain,
    register,
    report,
)

NAME = "csl-pretrain-evaluate-register"
SETTINGS = "csl-settings"  # ConfigMap (k8s/kfp)
SETTINGS_KEYS = ("MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "CSL_CHECKPOINT_URI",
                 "CSL_ARTIFACT_URI")
CREDENTIALS = "csl-credentials"  # Secret, created out of band (k8s/kfp/kustomization.yaml)
CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def _on_cluster(task: dsl.PipelineTask, node_selector: object = None, tolerations: object = None) -> dsl.PipelineTask:
    """The Kubernetes settings of a step (kfp.local ignores them)."""
    kubernetes.use_config_map_as_env(task, SETTINGS, {k: k for k in SETTINGS_KEYS}, optional=True)
    kubernetes.use_secret_as_env(task, CREDENTIALS, {k: k for k in CREDENTIAL_KEYS}, optional=True)
    if node_selector is not None:
        kubernetes.add_node_selector_json(task, node_selector)
    if tolerations is not None:
        kubernetes.add_toleration_json(task, tolerations)
    return task


@dsl.pipeline(name=NAME, description="Contrastive SSL: prepare, pretrain, evaluate and register each "
                                     "variant, report all")
def csl_pipeline(params_yaml: str, variants: List[str], data_repo: str = "", data_rev: str = "HEAD",
                 allow_unversioned: bool = False, tracking_uri: str = "", launcher: str = "local",
                 job_image: str = IMAGE, job_nodes: int = 2, job_gpus_per_node: int = 0, job_namespace: str = "",
                 node_selector: dict = {}, tolerations: list = []) -> None:  # noqa: B006 (KFP defaults)
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    common = {"params_yaml": params_yaml, "tracking_uri": tracking_uri, "pipeline_run_id": run_id}
    exit_task = cleanup(**common, launcher=launcher, job_namespace=job_namespace).set_caching_options(False)
    _on_cluster(exit_task)
    with dsl.ExitHandler(exit_task, name="csl-run"):
        prep = _on_cluster(prepare(**common, data_repo=data_repo, data_rev=data_rev,
                                   allow_unversioned=allow_unversioned))
        data = prep.outputs["data"]
        with dsl.ParallelFor(variants) as variant:
            pre = _on_cluster(pretrain(**common, variant=variant, data=data, launcher=launcher, data_repo=data_repo,
                                       data_rev=data_rev, job_image=job_image, job_nodes=job_nodes,
                                       job_gpus_per_node=job_gpus_per_node, job_namespace=job_namespace,
                                       node_selector=node_selector, tolerations=tolerations),
                              node_selector, tolerations)
            feat = _on_cluster(features(**common, variant=variant, data=data, encoder=pre.outputs["encoder"]),
                               node_selector, tolerations)
        todo = plan(params_yaml=params_yaml, variants=variants, runs=dsl.Collected(feat.outputs["run"]))
        with dsl.ParallelFor(todo.outputs["Output"]) as item:
            evaluated = _on_cluster(evaluate(**common, item=item, data=data, tree=todo.outputs["tree"],
                                             data_repo=data_repo, data_rev=data_rev,
                                             allow_unversioned=allow_unversioned), node_selector, tolerations)
        full = _on_cluster(distill(**common, variants=variants, data=data, tree=todo.outputs["tree"],
                                   results=dsl.Collected(evaluated.outputs["result"])), node_selector, tolerations)
        reg = _on_cluster(register(**common, variants=variants, data=data, tree=full.outputs["merged"]))
        _on_cluster(report(**common, variants=variants, data=data, runs=reg.outputs["runs"]))


def compile_to(path: str) -> None:
    from kfp import compiler

    compiler.Compiler().compile(csl_pipeline, package_path=path)
