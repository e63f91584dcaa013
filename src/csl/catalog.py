"""What is registered: methods, the loss kinds they take, and every part's components.

Backs ``csl methods`` (registered methods and the variants in params.yaml with their five
parts) and ``csl methods show NAME`` (a method's or a variant's resolved composition).
"""

from __future__ import annotations

from typing import Any

import yaml

from csl.config.strict import to_dict
from csl.methods import METHODS
from csl.methods.config import PART_TABLES
from csl.losses import LOSSES
from csl.registry import lookup


def _losses_for(method: str) -> list[str]:
    accepts = METHODS[method].accepts
    return sorted(n for n, e in LOSSES.items() if e.kind in accepts)


def listing(variants: dict[str, Any] | None) -> str:
    lines = ["Registered methods:"]
    for name in sorted(METHODS):
        e = METHODS[name]
        lines.append(f"  {name:<14} {e.summary}")
        lines.append(f"  {'':<14} losses: {', '.join(_losses_for(name))}")
    lines.append("")
    lines.append("Components of the five parts:")
    for key, (kind, table) in PART_TABLES.items():
        lines.append(f"  {key:<11} ({kind}): " + ", ".join(sorted(table)))
    if variants:
        lines.append("")
        lines.append("Variants in params.yaml (method: augment | encoder | extract | similarity | loss):")
        width = max(20, *(len(v) for v in variants))
        for v, cfg in variants.items():
            parts = " | ".join(cfg.parts[k].name for k in PART_TABLES)
            lines.append(f"  {v:<{width}} {cfg.method}: {parts}")
    return "\n".join(lines)


def show(name: str, variants: dict[str, Any] | None) -> str:
    """A variant's full resolved composition, or a method's defaults and compatible losses."""
    if variants and name in variants:
        return yaml.safe_dump({name: variants[name].as_dict()}, sort_keys=False).rstrip()
    entry = lookup(METHODS, "method or variant", name, "csl methods show")
    doc = {
        "method": name,
        "summary": entry.summary,
        "defaults": to_dict(entry.config()),
        "accepts_losses": _losses_for(name),
        "doc": (entry.config.__doc__ or "").strip(),
    }
    return yaml.safe_dump(doc, sort_keys=False).rstrip()
