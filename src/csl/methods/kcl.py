"""k-positive contrastive learning (KCL; Kang et al., ICLR 2021, "Exploring Balanced Feature
Spaces for Representation Learning"; official code bingykang/BalFeat ``moco/kcl_builder.py``).

MoCo v2 with a queue of labels beside the queue of keys: each query's positives are its key and
``k`` keys of the queue drawn from its own class, with the soft target ``1/(1+k)`` on each
(:func:`csl.losses.kcl.k_same_class`, the ``positives`` of :func:`csl.losses.info_nce.info_nce`).
It uses labels, at most ``k`` per query, which balances the classes' pull on the feature space
(the paper's point, for long-tailed data). Official settings: ``k = 6`` (README ``--posk 6``),
``tau = 0.07``, ``K = 65,536``, MoCo v2's augmentation and momentum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from csl.errors import ConfigError
from csl.methods.base import Needs, Parts
from csl.methods.moco import MoCo, MoCoV2Config
from csl.methods.views import require_views


@dataclass(frozen=True)
class KCLConfig(MoCoV2Config):
    """MoCo v2's settings and ``k``, the same-class positives per query."""

    k: int = 6

    def validate(self, path: str) -> None:
        super().validate(path)
        if self.k < 1:
            raise ConfigError(f"'{path}.k' must be >= 1 (k = 0 is MoCo v2: use method moco_v2)")


class KCL(MoCo):
    """MoCo with a label queue; it needs the batch's labels."""

    needs: ClassVar[Needs] = Needs(labels=True)


def build_kcl(cfg: KCLConfig, parts: Parts, channels_last: bool) -> KCL:
    require_views(parts.augment, 2, "kcl")
    return KCL(cfg.settings(), parts.augment, parts.encoder, parts.extract, parts.loss, channels_last,
               k_positives=cfg.k)
