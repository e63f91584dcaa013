"""Command-line overrides of params.yaml: ``key.path=value``, the value read as YAML."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from csl.errors import ConfigError


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``a.b.c=value`` applied.

    The path must already exist (so a typo is an error, not a silent new key), except the
    last key inside a component section, where the typed parse that follows checks it.
    """
    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"override {key}: cannot read value {raw!r}: {e}") from None
        parts = key.strip().split(".")
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node:
                done = ".".join(parts[: i + 1])
                raise ConfigError(f"override '{key}': unknown key '{done}' in params")
            node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"override '{key}': '{'.'.join(parts[:-1])}' is not a section")
        node[parts[-1]] = value
    return out
