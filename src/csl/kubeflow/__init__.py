"""The Kubeflow Pipelines side of csl: typed KFP v2 components over the stage entry points
(:mod:`csl.kubeflow.components`) and the pipeline that wires them (:mod:`csl.kubeflow.pipeline`,
compiled to ``pipelines/csl_pipeline.yaml``). Orchestration only: the library never imports it."""
