"""MoCHi (Kalantidis et al., 2020, "Hard Negative Mixing for Contrastive Learning", arXiv
2010.01028): MoCo v2 whose negatives, from a given step on, also include per-query synthetic hard
negatives mixed from the query's ``N`` hardest queue entries (:mod:`csl.losses.mochi`).

There is no official code; the paper's settings are written MoCHi ``(N, s, s')`` and explored on
ImageNet with ``K = 16k/65k`` (``N`` up to 1024, ``s`` and ``s'`` up to 1024). The defaults here,
``N = 32``, ``s = s' = 16``, are a public re-implementation's for ``K = 4096`` (see
``shared/notes/reading-list.md``), the scale of csl's small variants. ``start_step`` delays the
mixing (the paper mixes from the start; a warm-up is a common choice when the queue is still
filled with keys of an untrained encoder).
"""

from __future__ import annotations

from dataclasses import dataclass

from csl.errors import ConfigError
from csl.methods.base import Parts
from csl.methods.moco import HardNegatives, MoCo, MoCoV2Config
from csl.methods.views import require_views


@dataclass(frozen=True)
class MoCHiConfig(MoCoV2Config):
    """MoCo v2's settings and MoCHi's ``(N, s, s')`` with its start step."""

    n_hardest: int = 32
    s: int = 16
    s_prime: int = 16
    start_step: int = 0

    def validate(self, path: str) -> None:
        super().validate(path)
        if self.n_hardest < 1 or self.s < 0 or self.s_prime < 0 or self.start_step < 0:
            raise ConfigError(f"'{path}': need n_hardest >= 1, s >= 0, s_prime >= 0 and start_step >= 0")
        if self.n_hardest > self.queue_size:
            raise ConfigError(f"'{path}.n_hardest' ({self.n_hardest}) exceeds queue_size ({self.queue_size}): "
                              "the hardest negatives are picked from the queue; lower n_hardest or enlarge the queue")

    def hard_negatives(self) -> HardNegatives:
        return HardNegatives(self.n_hardest, self.s, self.s_prime, self.start_step)


def build_mochi(cfg: MoCHiConfig, parts: Parts, channels_last: bool) -> MoCo:
    require_views(parts.augment, 2, "mochi")
    return MoCo(cfg.settings(), parts.augment, parts.encoder, parts.extract, parts.loss, channels_last,
                hard_negatives=cfg.hard_negatives())

