"""Typed configuration: dataclasses per component, strict loading, CLI overrides."""

from csl.config.strict import parse, to_dict
from csl.config.overrides import apply_overrides

__all__ = ["parse", "to_dict", "apply_overrides"]
