"""params.yaml: the whole pipeline's parameters, loaded strictly and typed.

Top-level sections: ``data``, ``variants`` (the method variants the pipeline runs, the DVC
matrix), ``methods`` (each variant's composition), ``eval``, ``tracking``, ``storage``,
``health`` (the online health check of pretraining). The file layout is
fixed (:mod:`csl.stages.layout`) so that dvc.yaml and the stages agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from csl.config.overrides import apply_overrides
from csl.config.strict import parse, to_dict
from csl.data.config import DataConfig
from csl.errors import ConfigError
from csl.evaluate.config import EvalConfig
from csl.methods.config import MethodConfig, parse_method
from csl.train.config import HealthConfig


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow experiment name; the tracking URI comes from MLFLOW_TRACKING_URI, else a
    SQLite file ``mlflow.db`` in the project directory."""

    experiment: str = "csl"


@dataclass(frozen=True)
class StorageConfig:
    """Object storage beside the project directory (``null``: the project directory only).

    ``checkpoints: s3://BUCKET/PREFIX``: every epoch's checkpoint is also uploaded there and a
    (re)started job resumes from it, so a pod rescheduled on a fresh node loses nothing.
    ``artifacts: s3://BUCKET/PREFIX``: the stages' outputs (``runs/<variant>/...``) are uploaded
    there too. ``CSL_CHECKPOINT_URI`` and ``CSL_ARTIFACT_URI`` override them (a Kubernetes
    ConfigMap sets those); credentials and the endpoint come from the environment
    (:mod:`csl.io.s3`).
    """

    checkpoints: str | None = None
    artifacts: str | None = None

    def validate(self, path: str = "storage") -> None:
        for key in ("checkpoints", "artifacts"):
            v = getattr(self, key)
            if v is not None and not v.startswith("s3://"):
                raise ConfigError(f"'{path}.{key}' is {v!r}; use s3://BUCKET/PREFIX, or null for the "
                                  "project directory alone")

    @property
    def checkpoint_uri(self) -> str | None:
        return os.environ.get("CSL_CHECKPOINT_URI") or self.checkpoints

    @property
    def artifact_uri(self) -> str | None:
        return os.environ.get("CSL_ARTIFACT_URI") or self.artifacts


@dataclass(frozen=True)
class _Plain:
    data: DataConfig = field(default_factory=DataConfig)
    variants: list[str] = field(default_factory=list)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    health: HealthConfig = field(default_factory=HealthConfig)


@dataclass(frozen=True)
class Variant:
    """One method variant, resolved once: its name (the key in ``methods``, the DVC matrix item, the
    ``runs/<name>`` directory) and its parsed composition. The CLI, the Kubeflow components and the
    benchmarks look the name up once (:meth:`Params.variant`) and pass this object to the stages and
    the layout, which never look a name up again."""

    name: str
    config: MethodConfig

    @property
    def method(self) -> str:
        """The method the variant composes (``simclr``, ``byol``...)."""
        return self.config.method

    @property
    def encoder(self) -> str:
        return self.config.parts["encoder"].name

    def as_dict(self) -> dict[str, Any]:
        return self.config.as_dict()


@dataclass(frozen=True)
class Params:
    data: DataConfig
    variants: list[str]
    methods: dict[str, MethodConfig]
    eval: EvalConfig
    tracking: TrackingConfig
    raw: dict[str, Any]
    storage: StorageConfig = field(default_factory=StorageConfig)
    health: HealthConfig = field(default_factory=HealthConfig)

    def variant(self, name: str) -> Variant:
        """The variant ``name`` of ``methods``; an unknown name is an error that lists the defined ones."""
        if name not in self.methods:
            from csl.errors import UnknownNameError

            raise UnknownNameError("variant", name, list(self.methods), "--variant")
        return Variant(name, self.methods[name])

    @property
    def selected(self) -> list[Variant]:
        """The variants the pipeline runs (``variants``), in order."""
        return [Variant(v, self.methods[v]) for v in self.variants]

    def as_dict(self) -> dict[str, Any]:
        return {
            "data": to_dict(self.data),
            "variants": list(self.variants),
            "methods": {k: v.as_dict() for k, v in self.methods.items()},
            "eval": to_dict(self.eval),
            "tracking": to_dict(self.tracking),
            "storage": to_dict(self.storage),
            "health": to_dict(self.health),
        }


def parse_params(raw: dict[str, Any]) -> Params:
    if not isinstance(raw, dict):
        raise ConfigError("params.yaml must be a mapping of sections")
    methods_raw = raw.get("methods")
    if not isinstance(methods_raw, dict) or not methods_raw:
        raise ConfigError("params.yaml needs a non-empty 'methods' section (one entry per variant)")
    methods = {name: parse_method(m, f"methods.{name}") for name, m in methods_raw.items()}
    plain = parse(_Plain, {k: v for k, v in raw.items() if k != "methods"})
    if not plain.variants:
        raise ConfigError("'variants' must list at least one of the variants in 'methods': "
                          + ", ".join(methods))
    for i, v in enumerate(plain.variants):
        if v not in methods:
            raise ConfigError(f"'variants[{i}]' is {v!r}, which is not in 'methods' "
                              f"(defined: {', '.join(methods)})")
    labelled = plain.data.labelled
    names = plain.eval.metric_names(labelled, plain.data.in_memory)
    if plain.eval.champion_metric not in names:
        need = "" if labelled else (f" (data.dataset {plain.data.dataset} has no labels, so the label-based "
                                    "protocols do not run)")
        raise ConfigError(f"'eval.champion_metric' {plain.eval.champion_metric!r} is not produced by the protocols "
                          f"that run on this data{need}; choose one of: {', '.join(names) or 'none (add rankme to eval.run.probes)'}")
    return Params(plain.data, plain.variants, methods, plain.eval, plain.tracking, raw, plain.storage, plain.health)


def read_raw(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path} not found: run csl from the project directory or pass --params")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    return raw or {}


def load_params(path: Path, overrides: list[str] | None = None) -> Params:
    """Read params.yaml, apply ``key.path=value`` overrides, validate everything."""
    return parse_params(apply_overrides(read_raw(path), overrides or []))
