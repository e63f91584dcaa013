"""The one package that talks to MLflow (and reads DVC's records for lineage), split by concept:

- :mod:`~csl.tracking.store`: which store, is it answering (``use_store``, ``connect``);
- :mod:`~csl.tracking.lineage`: git commit, DVC md5s and remote of the data;
- :mod:`~csl.tracking.recorder`: what a stage logs, journaled;
- :mod:`~csl.tracking.runs`: stage runs, the pipeline run, searches;
- :mod:`~csl.tracking.liveness`: runs whose process is gone are ended ``KILLED``;
- :mod:`~csl.tracking.journal`: runs a lost server missed, and ``csl relog``;
- :mod:`~csl.tracking.parents`: the Kubeflow pipeline's parent run;
- :mod:`~csl.tracking.model_registry`: the encoder registry;
- :mod:`~csl.tracking.dvc_data`: a DVC-versioned dataset fetched by git revision.

Imports run one way: the submodules import each other, never this package's namespace.
"""

from csl.tracking.store import PARENT_ENV, RETRIES_ENV, connect, tracking_uri, use_store
from csl.tracking.lineage import dvc_out_md5, dvc_remote_url, git_commit
from csl.tracking.recorder import Recorder, flatten
from csl.tracking.parents import PIPELINE_RUN_ENV, close_pipeline_parent, current_parent, pipeline_run_id
from csl.tracking.runs import child_runs, latest_stage_runs, open_experiment, pipeline_run, stage_run
from csl.tracking.journal import PENDING, pending, relog

__all__ = ["PARENT_ENV", "PENDING", "PIPELINE_RUN_ENV", "RETRIES_ENV", "Recorder", "child_runs", "close_pipeline_parent",
           "connect", "current_parent", "dvc_out_md5", "open_experiment", "dvc_remote_url", "flatten", "git_commit", "latest_stage_runs",
           "pending", "pipeline_run", "pipeline_run_id", "relog", "stage_run", "tracking_uri", "use_store"]
