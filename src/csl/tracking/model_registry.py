"""The encoder registry: MLflow registered models ``csl-encoder-<dataset>-<variant>``.

``register`` logs the encoder as an MLflow PyTorch model (a :class:`FeatureExtractor`: images
in, embeddings out, the training data's normalization inside) with a signature and an input
example, and tags the new version with its lineage: the dataset (name, path, DVC md5, DVC
remote URL), the git commit, the hash of the resolved parameters, the pipeline run, the stage
runs and the metrics. Registration is idempotent: the same encoder (sha256 of its file) is
never registered twice. The alias ``champion`` moves to a new version only when its linear
top-1 beats the champion's on the same dataset version (same DVC md5); every decision is
written on the version (tag ``csl.champion_decision``) and returned.

Load a champion: ``mlflow.pytorch.load_model("models:/csl-encoder-fashion-mnist-simclr-small@champion")``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csl.errors import CslError, TrackingError

CHAMPION = "champion"
PREFIX = "csl-encoder"


def model_name(dataset: str, variant: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"{PREFIX}-{dataset}-{variant}".lower()).strip("-")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Registration:
    name: str
    version: str
    created: bool  # False: this encoder was registered before (idempotent)
    champion: bool
    decision: str
    run_id: str = ""  # the run that logged the model version
    encoder_sha256: str = ""

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _client() -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def _find_same(client: Any, name: str, sha: str) -> Any | None:
    for mv in client.search_model_versions(f"name = '{name}'"):
        if mv.tags.get("csl.encoder_sha256") == sha:
            return mv
    return None


def _champion(client: Any, name: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def decide_champion(metric: str, new_value: float, new_md5: str, champion: Any | None) -> tuple[bool, str]:
    """``(promote, reason)``: promote when there is no champion, or when the new version beats the
    champion's ``metric`` (``eval.champion_metric``, higher is better) on the same dataset version."""
    if champion is None:
        return True, "no champion yet"
    old_md5 = champion.tags.get("csl.data.dvc_md5", "")
    if old_md5 != new_md5:
        return False, (f"champion v{champion.version} was evaluated on other data ({old_md5} vs {new_md5}); "
                       "not comparable, kept (promote explicitly with csl registry promote)")
    text = champion.tags.get(f"csl.metrics.{metric}")
    if text is None:
        return False, (f"champion v{champion.version} has no {metric} (it was evaluated with other protocols); "
                       "not comparable, kept (promote explicitly with csl registry promote)")
    old = float(text)
    label = metric.replace("_", " ")
    if round(new_value, 6) > round(old, 6):  # at the precision of the tag it is compared with: a tie keeps
        return True, f"{label} {new_value:.4f} beats champion v{champion.version}'s {old:.4f}"
    return False, f"{label} {new_value:.4f} does not beat champion v{champion.version}'s {old:.4f}"


def register(extractor: Any, example: Any, name: str, encoder_file: Path, tags: dict[str, str],
             metric: str, value: float) -> Registration:
    """Log ``extractor`` in the active MLflow run and register it under ``name`` (see module doc); the
    champion rule ranks by ``metric`` (whose ``value`` this encoder reached)."""
    import mlflow
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    client = _client()
    sha = file_sha256(encoder_file)
    try:
        same = _find_same(client, name, sha) if client.search_registered_models(f"name = '{name}'") else None
        if same is not None:
            champ = _champion(client, name)
            is_champ = champ is not None and str(champ.version) == str(same.version)
            # the same encoder evaluated by more (or changed) protocols: its version records the metrics
            metrics = {k: v for k, v in tags.items() if k.startswith("csl.metrics.") and same.tags.get(k) != v}
            links = {k: v for k, v in tags.items() if k.startswith("csl.run.") and k not in same.tags}  # new stages
            for k, v in {**metrics, **links}.items():
                client.set_model_version_tag(name, str(same.version), k, v)
            what = f"recorded {len(metrics)} new or changed metric(s)" if metrics else "nothing changed"
            return Registration(name, str(same.version), False, is_champ,
                                f"already registered as v{same.version} (same encoder); {what}",
                                str(same.run_id or ""), sha)
        with torch.no_grad():
            out = extractor(torch.as_tensor(example)).numpy()
        signature = infer_signature(np.asarray(example), out)
        info = mlflow.pytorch.log_model(extractor, name="encoder", signature=signature, input_example=example,
                                        serialization_format="pickle", registered_model_name=name,
                                        pip_requirements=["torch", "csl"])
        version = str(info.registered_model_version)
        run_id = str(info.run_id or "")  # the active run, which logged the version
        all_tags = {**tags, "csl.encoder_sha256": sha, f"csl.metrics.{metric}": f"{value:.6f}",
                    "csl.champion_metric": metric}
        for k, v in all_tags.items():
            client.set_model_version_tag(name, version, k, v)
        promote, why = decide_champion(metric, value, tags.get("csl.data.dvc_md5", ""), _champion(client, name))
        if promote:
            client.set_registered_model_alias(name, CHAMPION, version)
        client.set_model_version_tag(name, version, "csl.champion_decision", ("promoted: " if promote else "kept: ")
                                     + why)
        return Registration(name, version, True, promote, why, run_id, sha)
    except CslError:
        raise
    except Exception as e:  # MlflowException, OperationalError, ...
        raise TrackingError(f"cannot register {name} in the MLflow registry: {e}") from None


def find_encoder(name: str, encoder_file: Path) -> Any | None:
    """The version of ``name`` that holds ``encoder_file`` (same sha256) in the current store, or None."""
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        if not client.search_registered_models(f"name = '{name}'"):
            return None
        return _find_same(client, name, file_sha256(encoder_file))
    except MlflowException as e:
        raise TrackingError(f"cannot read the MLflow registry: {e.message}") from None


def verify(record: dict[str, Any], encoder_file: Path) -> str | None:
    """Why the registration ``record`` (a ``registration.json``) does not hold in the current store,
    or None when it does: the version must exist, hold this encoder (sha256) and come from the
    recorded run."""
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        mv = client.get_model_version(record["name"], str(record["version"]))
    except MlflowException:
        return f"{record.get('uri')} is not in this store"
    except KeyError as e:
        return f"the record lacks {e}"
    sha = file_sha256(encoder_file) if encoder_file.is_file() else None
    if mv.tags.get("csl.encoder_sha256") != record.get("encoder_sha256") or (sha and sha != record.get("encoder_sha256")):
        return f"{record.get('uri')} holds another encoder than {encoder_file}"
    if record.get("run_id") and str(mv.run_id) != record["run_id"]:
        return f"{record.get('uri')} was logged by run {mv.run_id}, not by the recorded run {record['run_id']}"
    return None


def resolve(uri_or_name: str) -> Any:
    """A model version from ``NAME``, ``NAME@ALIAS``, ``NAME/VERSION`` or ``models:/...``
    (NAME alone: the champion, else the latest version)."""
    client = _client()
    ref = uri_or_name.removeprefix("models:/")
    from mlflow.exceptions import MlflowException

    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return client.get_model_version_by_alias(name, alias)
        if "/" in ref:
            name, version = ref.split("/", 1)
            return client.get_model_version(name, version)
        champ = _champion(client, ref)
        if champ is not None:
            return champ
        versions = sorted(client.search_model_versions(f"name = '{ref}'"), key=lambda v: int(v.version))
        if versions:
            return versions[-1]
    except MlflowException as e:
        raise CslError(f"no model version {uri_or_name!r} in the registry ({e.message}); list them with "
                       "csl registry list") from None
    raise CslError(f"no registered model {ref!r}; list them with csl registry list")


def resolve_encoder(uri_or_name: str) -> Any:
    """:func:`resolve`, refused unless the version is a csl encoder (it carries ``csl.encoder_sha256``,
    written by :func:`register`)."""
    mv = resolve(uri_or_name)
    if not mv.tags.get("csl.encoder_sha256"):
        raise CslError(f"{uri_or_name} is not a csl encoder: version {mv.version} of {mv.name} has no "
                       "csl.encoder_sha256 tag. csl encoders are registered by the pipeline's register stage "
                       "(csl register) as csl-encoder-<dataset>-<variant>; list them with csl registry list")
    return mv


def download_uri(mv: Any) -> str:
    """Where the registry keeps the files of model version ``mv``."""
    return str(_client().get_model_version_download_uri(mv.name, mv.version))


def dataset_prefix(dataset: str) -> str:
    """The name prefix of every encoder registered for ``dataset``."""
    return model_name(dataset, "x")[:-1]


def listing(prefix: str = f"{PREFIX}-") -> list[dict[str, Any]]:
    """Every version of the registered models whose name starts with ``prefix``: registry
    status (aliases, the champion decision) and lineage (data md5, commit, pipeline run)."""
    client = _client()
    rows = []
    for rm in client.search_registered_models(f"name LIKE '{prefix}%'"):
        versions = client.search_model_versions(f"name = '{rm.name}'")
        aliases: dict[str, list[str]] = {}
        for a, v in (rm.aliases or {}).items():
            aliases.setdefault(str(v), []).append(a)
        for mv in sorted(versions, key=lambda v: int(v.version)):
            t = mv.tags
            rows.append({"name": rm.name, "version": str(mv.version), "alias": ",".join(aliases.get(str(mv.version), [])),
                         "variant": t.get("csl.variant", ""), "linear_top1": t.get("csl.metrics.linear_top1", ""),
                         "knn_top1": t.get("csl.metrics.knn_top1", ""),
                         "champion_metric": t.get("csl.champion_metric", ""),
                         "champion_value": t.get(f"csl.metrics.{t.get('csl.champion_metric', 'linear_top1')}", ""),
                         "data_md5": t.get("csl.data.dvc_md5", ""),
                         "commit": t.get("csl.git_commit", "")[:10], "pipeline_run": t.get("csl.pipeline_run_id", ""),
                         "decision": t.get("csl.champion_decision", ""), "created": int(mv.creation_timestamp or 0)})
    return rows


def promote(ref: str, alias: str = CHAMPION) -> Any:
    """Point ``alias`` at the version ``ref`` names (an explicit decision, recorded on it)."""
    mv = resolve(ref)
    client = _client()
    client.set_registered_model_alias(mv.name, alias, mv.version)
    client.set_model_version_tag(mv.name, mv.version, "csl.champion_decision", f"promoted to {alias} by hand")
    return mv


def lineage(ref: str) -> dict[str, Any]:
    """The whole chain of a model version: dataset, code, params, pipeline run, warm-start parent
    (``train.init_from``; None when trained from random init), stage runs, metrics."""
    mv = resolve(ref)
    client = _client()
    t = mv.tags
    chain: dict[str, Any] = {
        "model": {"name": mv.name, "version": mv.version, "uri": f"models:/{mv.name}/{mv.version}",
                  "aliases": list(getattr(mv, "aliases", []) or []), "encoder_sha256": t.get("csl.encoder_sha256"),
                  "champion_decision": t.get("csl.champion_decision"),
                  "champion_metric": t.get("csl.champion_metric", "linear_top1")},
        "dataset": {"name": t.get("csl.data.name"), "path": t.get("csl.data.path"),
                    "dvc_md5": t.get("csl.data.dvc_md5"), "content_hash": t.get("csl.data.content_hash"),
                    "remote": t.get("csl.data.remote"), "repo": t.get("csl.data.repo"),
                    "rev": t.get("csl.data.rev")},
        "code": {"git_commit": t.get("csl.git_commit"), "git_dirty": t.get("csl.git_dirty"),
                 "fingerprint": t.get("csl.code_fingerprint")},
        "params": {"hash": t.get("csl.params_hash"), "variant": t.get("csl.variant")},
        "pipeline_run": t.get("csl.pipeline_run_id") or None,
        "parent": ({"uri": t["csl.parent.uri"], "model_version": t.get("csl.parent.model_version"),
                    "sha256": t.get("csl.parent.sha256")} if t.get("csl.parent.uri") else None),
        "stage_runs": {},
        "metrics": {k.removeprefix("csl.metrics."): float(v) for k, v in t.items() if k.startswith("csl.metrics.")},
    }
    stages = [k.removeprefix("csl.run.") for k in t if k.startswith("csl.run.")]
    first, last = ("pretrain", "features", "linear-eval"), ("register",)
    middle = sorted(s for s in stages if s not in first + last)
    for stage in [s for s in first if s in stages] + middle + [s for s in last if s in stages]:
        run_id = t[f"csl.run.{stage}"]
        run = client.get_run(run_id)
        chain["stage_runs"][stage] = {"run_id": run_id, "status": run.info.status,
                                      "metrics": dict(run.data.metrics)}
        if stage == "pretrain":
            chain["params"]["values"] = dict(run.data.params)
    return chain
