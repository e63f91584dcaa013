"""Methods: compositions of the five parts. ``METHODS`` maps a name to its typed config
(method-level settings), its builder and the loss kinds it can compose with.

A builder receives the method's config, the constructed parts (:class:`csl.methods.base.Parts`)
and ``channels_last``, and returns a :class:`csl.methods.base.Method`: the contract that declares
every hook the training loop calls (see :mod:`csl.methods.base`). A method config may define
``check_composition(train, parts, path)``, run at config time.

Adding a method: one module here (its config, its Method, its builder), its loss in
:mod:`csl.losses` when it needs a new one, an entry below, and a variant in params.yaml."""

from __future__ import annotations

from csl.methods.barlow_twins import BarlowTwins, BarlowTwinsMethodConfig, build_barlow_twins
from csl.methods.byol import BYOL, BYOLConfig, build_byol
from csl.methods.cpc import CPC, CPCConfig, build_cpc
from csl.methods.dim import DIM, DIMConfig, build_dim
from csl.methods.dino import DINO, DINOConfig, build_dino
from csl.methods.clae import CLAE, CLAEConfig, build_clae
from csl.methods.imix import IMix, IMixConfig, IMixMoCoConfig, build_imix, build_imix_moco
from csl.methods.kcl import KCL, KCLConfig, build_kcl
from csl.methods.mochi import MoCHiConfig, build_mochi
from csl.methods.moco import MoCo, MoCoV2Config, MoCoV3Config, build_moco
from csl.methods.pcl import PCL, PCLConfig, build_pcl
from csl.methods.simclr import SimCLR, SimCLRConfig, build_simclr
from csl.methods.simsiam import SimSiam, SimSiamConfig, build_simsiam
from csl.methods.supcon import SupCon, SupConConfig, build_supcon
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
    "mochi": Entry(MoCHiConfig, build_mochi,
                   "MoCHi (arXiv 2010.01028): MoCo v2 + synthetic hard negatives mixed from the queue",
                   accepts=("key_contrastive",)),
    "clae": Entry(CLAEConfig, build_clae,
                  "CLAE (arXiv 2010.12050): SimCLR + a one-step FGSM view with its own batch norms",
                  accepts=("contrastive",)),
    "imix": Entry(IMixConfig, build_imix,
                  "i-Mix (arXiv 2010.08887): input mixup with mixed virtual instance labels, N-pair (SimCLR)",
                  accepts=("mixed_instance",)),
    "imix_moco": Entry(IMixMoCoConfig, build_imix_moco,
                       "i-Mix on MoCo v2: mixed query inputs, in-batch keys join the queue, mixed targets",
                       accepts=("key_contrastive",)),
    "kcl": Entry(KCLConfig, build_kcl,
                 "KCL (ICLR 2021, BalFeat): MoCo v2 + label queue, k same-class keys as positives "
                 "(uses labels)", accepts=("key_contrastive",)),
    "pcl": Entry(PCLConfig, build_pcl,
                 "PCL (arXiv 2005.04966): MoCo v2 + ProtoNCE over k-means prototypes of the training set, "
                 "recomputed between epochs", accepts=("key_contrastive",)),
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
    "supcon": Entry(SupConConfig, build_supcon,
                    "SupCon (arXiv 2004.11362): supervised contrastive, every view of the class is a positive "
                    "(uses labels: a supervised reference)", accepts=("supervised",)),
}

__all__ = ["METHODS", "SimCLR", "BYOL", "SimSiam", "BarlowTwins", "MoCo", "SwAV", "DINO", "DIM", "CPC", "SupCon", "KCL", "IMix", "CLAE", "PCL"]
