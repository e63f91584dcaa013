"""Methods: compositions of the five parts. ``METHODS`` maps a name to its builder.

A builder receives the five constructed parts (``augment``, ``encoder``, ``extract``,
``similarity``, ``loss``) and returns a module with ``training_loss(images, generator)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from csl.methods.simclr import SimCLR, build_simclr
from csl.registry import Entry


@dataclass(frozen=True)
class NoMethodParams:
    """Method-level settings beyond the parts (none for SimCLR)."""


METHODS: dict[str, Entry] = {
    "simclr": Entry(NoMethodParams, build_simclr, "SimCLR (arXiv 2002.05709): two views, shared encoder + MLP head, NT-Xent"),
}

__all__ = ["METHODS", "SimCLR"]
