"""A method variant: the five parts (registered names + their configs) and training settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from csl.augment import AUGMENTATIONS
from csl.config.strict import parse, to_dict
from csl.encoders import ENCODERS
from csl.errors import ConfigError
from csl.extract import EXTRACTORS
from csl.losses import LOSSES
from csl.registry import Entry, Spec, parse_spec
from csl.similarity import SIMILARITIES
from csl.train.config import TrainConfig
from csl.train.optim import OptimizerConfig
from csl.train.schedule import ScheduleConfig

PART_TABLES: dict[str, tuple[str, dict[str, Entry]]] = {
    "augment": ("augmentation", AUGMENTATIONS),
    "encoder": ("encoder", ENCODERS),
    "extract": ("extractor", EXTRACTORS),
    "similarity": ("similarity", SIMILARITIES),
    "loss": ("loss", LOSSES),
}


@dataclass(frozen=True)
class _TrainingSections:
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class MethodConfig:
    """``method`` names the composition (with its own settings in ``method_params``);
    ``parts`` holds the five resolved components."""

    method: str
    method_params: Any
    parts: dict[str, Spec]
    optimizer: OptimizerConfig
    schedule: ScheduleConfig
    train: TrainConfig

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": {"name": self.method, **to_dict(self.method_params)},
            **{k: v.as_dict() for k, v in self.parts.items()},
            "optimizer": to_dict(self.optimizer),
            "schedule": to_dict(self.schedule),
            "train": to_dict(self.train),
        }


def parse_method(raw: Any, path: str) -> MethodConfig:
    from csl.methods import METHODS  # the registry imports the method modules

    if not isinstance(raw, dict):
        raise ConfigError(f"'{path}' must be a mapping, got {raw!r}")
    if "method" not in raw:
        raise ConfigError(f"missing required key '{path}.method'; valid methods: {', '.join(sorted(METHODS))}")
    method = parse_spec(METHODS, "method", raw["method"], f"{path}.method")
    missing = [k for k in PART_TABLES if k not in raw]
    if missing:
        raise ConfigError(f"missing required key '{path}.{missing[0]}' (a method declares all five parts: "
                          f"{', '.join(PART_TABLES)})")
    parts = {k: parse_spec(table, kind, raw[k], f"{path}.{k}") for k, (kind, table) in PART_TABLES.items()}
    _check_loss(method.name, parts["loss"].name, path)
    rest = {k: v for k, v in raw.items() if k not in PART_TABLES and k != "method"}
    sections = parse(_TrainingSections, rest, path)
    check = getattr(method.config, "check_composition", None)
    if callable(check):  # cross-part rules a method states (queue vs batch size, encoder kind)
        check(sections.train, parts, f"{path}.method")
    return MethodConfig(method.name, method.config, parts, sections.optimizer, sections.schedule, sections.train)


def _check_loss(method: str, loss: str, path: str) -> None:
    """A method composes only with losses whose call it makes (fails at config time)."""
    from csl.methods import METHODS

    accepts = METHODS[method].accepts
    kind = LOSSES[loss].kind
    if kind not in accepts:
        fits = sorted(n for n, e in LOSSES.items() if e.kind in accepts)
        raise ConfigError(f"'{path}.loss': method '{method}' cannot use loss '{loss}' (a {kind} loss); "
                          f"it takes {' or '.join(accepts)} losses: {', '.join(fits)}")
