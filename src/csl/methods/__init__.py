"""Methods: compositions of the five parts. ``METHODS`` maps a name to its typed config
(method-level settings), its builder and the loss kinds it can compose with.

A builder receives the method's config, the five constructed parts (``augment``,
``encoder``, ``extract``, ``similarity``, ``loss``, plus ``loss_kind``, ``make_extract``
(another head of the extraction spec for a given input size), ``image_size`` and
``in_channels``) and returns a module with ``training_loss(images, generator) -> {"loss": ...}``.
Optional hooks the training loop calls: ``before_step(step, total_steps, steps_per_epoch)``
(step-dependent settings), ``after_backward()`` (drop gradients of frozen parts),
``after_step(step, total_steps)`` (EMA targets, after the optimizer step) and
``check_dataset(n_train)``. A method config may define
``check_composition(train, parts, path)``, run at config time.
"""

from __future__ import annotations

from csl.methods.barlow_twins import BarlowTwins, BarlowTwinsMethodConfig, build_barlow_twins
from csl.methods.byol import BYOL, BYOLConfig, build_byol
from csl.methods.cpc import CPC, CPCConfig, build_cpc
from csl.methods.dim import DIM, DIMConfig, build_dim
from csl.methods.dino import DINO, DINOConfig, build_dino
from csl.methods.moco import MoCo, MoCoV2Config, MoCoV3Config, build_moco
from csl.methods.simclr import SimCLR, SimCLRConfig, build_simclr
from csl.methods.simsiam import SimSiam, SimSiamConfig, build_simsiam
from csl.methods.swav import SwAV, SwAVConfig, build_swav
from csl.registry import Entry

METHODS: dict[str, Entry] = {
    "simclr": Entry(SimCLRConfig, build_simclr,
                    "SimCLR (arXiv 2002.05709): two views, shared encoder + MLP head, NT-Xent",
                    accepts=("contrastive",)),
    "byol": Entry(BYOLConfig, build_byol,
                  "BYOL (arXiv 2006.07733): online predictor vs EMA target, cosine momentum schedule",
                  accepts=("predictive", "contrastive")),
    "simsiam": Entry(SimSiamConfig, build_simsiam,
                     "SimSiam (arXiv 2011.10566): predictor + stop-gradient, negative cosine",
                     accepts=("predictive",)),
    "barlow_twins": Entry(BarlowTwinsMethodConfig, build_barlow_twins,
                          "Barlow Twins (arXiv 2103.03230): cross-correlation to identity",
                          accepts=("redundancy",)),
    "moco_v2": Entry(MoCoV2Config, build_moco,
                     "MoCo v2 (arXiv 2003.04297): EMA key encoder, queue of negatives, shuffle-BN groups",
                     accepts=("key_contrastive",)),
    "moco_v3": Entry(MoCoV3Config, build_moco,
                     "MoCo v3 (arXiv 2104.02057): predictor, symmetric in-batch InfoNCE, cosine momentum",
                     accepts=("key_contrastive",)),
    "swav": Entry(SwAVConfig, build_swav,
                  "SwAV (arXiv 2006.09882): prototypes, Sinkhorn codes, swapped prediction, optional queue",
                  accepts=("clustering",)),
    "dino": Entry(DINOConfig, build_dino,
                  "DINO (arXiv 2104.14294): EMA teacher on global crops, centring, temperature warm-up",
                  accepts=("distillation",)),
    "dim": Entry(DIMConfig, build_dim,
                 "AMDIM (arXiv 1906.00910) / YADIM: NCE between feature-map scales of two views",
                 accepts=("feature_map",)),
    "cpc": Entry(CPCConfig, build_cpc,
                 "CPC v2 (arXiv 1905.09272): patch grid, causal context, predict rows below",
                 accepts=("predictive_coding",)),
}

__all__ = ["METHODS", "SimCLR", "BYOL", "SimSiam", "BarlowTwins", "MoCo", "SwAV", "DINO", "DIM", "CPC"]
