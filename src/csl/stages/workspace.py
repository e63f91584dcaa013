"""A project directory assembled from parts, for running one stage where the pipeline's files
arrive one by one (a Kubeflow step receives its inputs as artifacts): ``params.yaml`` from a
string, inputs copied to their :class:`~csl.stages.layout.Layout` paths, then the stage's own
entry point called directly (the same function DVC's ``csl <stage>`` command calls)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from csl.errors import CslError
from csl.evaluate.config import ProtocolItem
from csl.params import Params, Variant, load_params
from csl.stages.layout import Layout


@dataclass(frozen=True)
class Step:
    """One pipeline step's project: its layout (directory and parameters)."""

    layout: Layout

    @property
    def project(self) -> Path:
        return self.layout.project

    @property
    def params(self) -> Params:
        return self.layout.params

    def put_variant(self, variant: Variant, tree: str) -> None:
        """Put ``variant``'s outputs so far (``runs/V`` of a :func:`merge_results` tree) in place."""
        src = Path(tree, "runs", variant.name)
        if src.is_dir():
            self.put(self.layout.variant_dir(variant), str(src))

    def put(self, dst: Path, src: str) -> None:
        """Copy an input artifact (file or directory) to ``dst``, a path of this step's layout."""
        src_p = Path(src)
        if not dst.resolve().is_relative_to(self.project.resolve()):
            raise CslError(f"{dst} is outside the step's project {self.project}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src_p.is_dir():
            shutil.copytree(src_p, dst, dirs_exist_ok=True)
        elif src_p.is_file():
            shutil.copy2(src_p, dst)
        else:
            raise CslError(f"input {src} for {dst.relative_to(self.project)} does not exist")


def merge_results(out: str, tree: str, results: list[str]) -> None:
    """One directory tree of the pipeline's outputs so far: ``tree`` (a tree like this one, or "") plus
    each of ``results``: a variant's linear-eval artifact (``variant.txt`` names it: it goes to
    ``runs/<variant>``) or a protocol result (``out/`` goes to the path in ``path.txt``)."""
    dst = Path(out)
    dst.mkdir(parents=True, exist_ok=True)
    if tree:
        shutil.copytree(tree, dst, dirs_exist_ok=True)
    for r in results:
        if Path(r, "variant.txt").is_file():
            shutil.copytree(r, dst / "runs" / Path(r, "variant.txt").read_text(), dirs_exist_ok=True)
        elif Path(r, "path.txt").read_text():  # empty: a no-op item
            shutil.copytree(Path(r, "out"), dst / Path(r, "path.txt").read_text(), dirs_exist_ok=True)


def run_protocol(s: Step, item: dict[str, str], data: str, tree: str, data_repo: str, data_rev: str,
                 allow_unversioned: bool, result: str) -> Path:
    """A Kubeflow step's protocol item (``{"variant", "kind", "item"}``): put the data and the variant's
    outputs so far (``tree``, :func:`merge_results`) in place, run the stage's entry point (``csl probe |
    finetune | distill | transfer``), export ``result/out`` (the protocol's output directory) and
    ``result/path.txt`` (its project-relative path). Kind ``linear``: ``csl linear-eval`` (its item is "")."""
    from csl.stages import distill, finetune, linear_eval, probe, transfer
    from csl.stages import prepare as prep

    if item["kind"] == "none":  # nothing selected: the loop's single no-op item
        Path(result, "out").mkdir(parents=True, exist_ok=True)
        Path(result, "path.txt").write_text("")
        return Path(result, "out")
    v = s.params.variant(item["variant"])
    s.put(s.layout.data_dir, data)
    s.put_variant(v, tree)
    if item["kind"] == "linear":  # linear-eval writes eval/ itself (metrics.json, the map); probes go below it
        linear_eval.main(s.params, s.project, v)
        out = s.layout.eval_dir(v)
        export(out, str(Path(result, "out")))
        Path(result, "path.txt").write_text(out.relative_to(s.project).as_posix())
        return out
    todo = ProtocolItem(item["kind"], item["item"])
    name = todo.item
    if todo.kind == "probe":
        probe.main(s.params, s.project, v, name)
    elif todo.kind == "finetune":
        finetune.main(s.params, s.project, v, name)
    elif todo.kind == "distill":
        distill.main(s.params, s.project, v, name)
    elif todo.kind == "transfer":
        target = f"data/transfer/{name}"
        if data_repo:
            prep.fetch_main(s.params, s.project, data_repo, data_rev or "HEAD", target, track=False)
        elif allow_unversioned:
            transfer.prepare_transfer(s.params, s.project, name)
        else:
            raise CslError(f"transfer target {name}: no data_repo given and allow_unversioned is off; version "
                           f"{target} with DVC in data_repo ('dvc repro prepare-transfer') and push it")
        transfer.main(s.params, s.project, v, name)
    else:
        raise CslError(f"unknown protocol kind {todo.kind!r}")
    out = s.layout.item_dir(v, todo)
    export(out, str(Path(result, "out")))
    Path(result, "path.txt").write_text(out.relative_to(s.project).as_posix())
    return out


def step(params_yaml: str, tracking_uri: str = "", pipeline_run_id: str = "", root: str | None = None,
         variants: list[str] | None = None) -> Step:
    """A fresh project directory with ``params.yaml`` (validated here, before any work; ``variants``
    narrows the pipeline's variants). ``tracking_uri`` (when not empty) and ``pipeline_run_id`` go to
    this process's environment for the stage to log with."""
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    if pipeline_run_id:
        os.environ["CSL_PIPELINE_RUN_ID"] = pipeline_run_id
    ws = Path(tempfile.mkdtemp(prefix="csl-step-", dir=root))
    (ws / "params.yaml").write_text(params_yaml)
    overrides = [f"variants={json.dumps(variants)}"] if variants is not None else []
    return Step(Layout(ws, load_params(ws / "params.yaml", overrides)))


def export(src: Path, dst: str) -> None:
    """Copy a stage output (file or directory) to an artifact path."""
    d = Path(dst)
    d.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, d, dirs_exist_ok=True)
    else:
        shutil.copy2(src, d)


def step_namespace() -> str:
    """The Kubernetes namespace this step's pod runs in (its service account's), else ``default``."""
    f = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return f.read_text().strip() if f.is_file() else "default"


def close_parent(s: Step, status: str) -> str | None:
    """End this pipeline run's MLflow parent run with ``status`` if it is still running."""
    from csl import tracking

    return tracking.close_pipeline_parent(s.project, s.params.tracking.experiment, status)
