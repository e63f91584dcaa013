"""Registries: plain dicts from a component name to its typed config and constructor.

Each of the five parts keeps its own table (``csl.encoders.ENCODERS``, ...). In
params.yaml a component is written as a mapping with a ``name`` and that component's own
keys, e.g. ``{name: small_cnn, widths: [32, 64, 128]}``; :func:`parse_spec` checks it
against the component's config dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from csl.config.strict import parse, to_dict
from csl.errors import ConfigError, UnknownNameError


@dataclass(frozen=True)
class Entry:
    """One registered component: its config dataclass, its constructor and a summary.

    ``kind`` classifies a loss by the call it expects (see :mod:`csl.losses`; e.g. ``contrastive``: ``(z_a, z_b,
    similarity)``; ``predictive``: ``(prediction, target)``; ``redundancy``: ``(z_a, z_b)``);
    ``accepts`` lists the loss kinds a method can compose with.
    """

    config: type
    build: Callable[..., Any]
    summary: str
    kind: str = ""
    accepts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Spec:
    """A resolved component choice: the registered name and its typed config."""

    name: str
    config: Any

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **to_dict(self.config)}


def lookup(table: dict[str, Entry], kind: str, name: Any, where: str = "") -> Entry:
    if not isinstance(name, str) or name not in table:
        raise UnknownNameError(kind, name, list(table), where)
    return table[name]


def parse_spec(table: dict[str, Entry], kind: str, raw: Any, where: str) -> Spec:
    """Parse ``{name: ..., **params}`` (or a bare name) into a :class:`Spec`."""
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict) or "name" not in raw:
        raise ConfigError(f"'{where}' must be a mapping with a 'name' key, got {raw!r}")
    params = {k: v for k, v in raw.items() if k != "name"}
    entry = lookup(table, kind, raw["name"], f"{where}.name")
    return Spec(raw["name"], parse(entry.config, params, where))


def build(table: dict[str, Entry], spec: Spec, **context: Any) -> Any:
    """Construct the component that ``spec`` names, passing its config and ``context``."""
    return table[spec.name].build(spec.config, **context)
