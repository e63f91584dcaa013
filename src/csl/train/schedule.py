"""Learning-rate schedule: linear warm-up then cosine decay, a pure function of the step.

SimCLR (arXiv 2002.05709, Sec. B.1): "linear warmup for the first 10 epochs, and decay the
learning rate with the cosine decay schedule without restarts" (Loshchilov & Hutter, 2016).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from csl.errors import ConfigError


@dataclass(frozen=True)
class ScheduleConfig:
    """``warmup_epochs`` may be fractional; ``final_lr_fraction`` is the lr at the last step.
    ``weight_decay_final``: null keeps the optimizer's weight decay constant; a value ramps it
    per step with :func:`cosine_ramp` (DINO: 0.04 -> 0.4)."""

    warmup_epochs: float = 10.0
    final_lr_fraction: float = 0.0
    weight_decay_final: float | None = None

    def validate(self, path: str) -> None:
        if self.warmup_epochs < 0:
            raise ConfigError(f"'{path}.warmup_epochs' must be >= 0")
        if not 0 <= self.final_lr_fraction <= 1:
            raise ConfigError(f"'{path}.final_lr_fraction' must be in [0, 1]")
        if self.weight_decay_final is not None and self.weight_decay_final < 0:
            raise ConfigError(f"'{path}.weight_decay_final' must be >= 0 or null (constant weight decay)")


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, final_fraction: float = 0.0) -> float:
    """Multiplier of the base lr at ``step`` (0-based).

    ``(step + 1) / warmup_steps`` during warm-up, then
    ``f + (1 - f) * (1 + cos(pi * t)) / 2`` with ``t`` going from 0 to 1 over the rest.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps - 1)
    t = min(1.0, (step - warmup_steps) / decay_steps)
    return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * t))


def cosine_momentum(step: int, total_steps: int, base: float, final: float = 1.0) -> float:
    """EMA momentum increased from ``base`` to ``final`` with a cosine over training:
    ``final - (final - base) * (cos(pi k / K) + 1) / 2`` (BYOL, arXiv 2006.07733, Sec. 3.2:
    ``tau = 1 - (1 - tau_base)(cos(pi k/K) + 1)/2`` with ``tau_base = 0.996``)."""
    k = min(max(step, 0), total_steps)
    return final - (final - base) * (math.cos(math.pi * k / max(1, total_steps)) + 1) / 2


def cosine_ramp(step: int, total_steps: int, start: float, end: float) -> float:
    """``start`` at step 0 to ``end`` at ``total_steps`` along a half cosine (DINO's weight-decay
    schedule 0.04 -> 0.4, arXiv 2104.14294, Sec. 4; the same curve as :func:`cosine_momentum`)."""
    return cosine_momentum(step, total_steps, start, end)


def linear_warmup(step: int, warmup_steps: int, start: float, end: float) -> float:
    """``start`` at step 0 rising linearly to ``end`` at ``warmup_steps``, then ``end``
    (DINO's teacher temperature 0.04 -> 0.07 over the first 30 epochs, arXiv 2104.14294, Sec. 4)."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return end
    return start + (end - start) * max(step, 0) / warmup_steps
