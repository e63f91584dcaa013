"""Methods: compositions of the five parts. ``METHODS`` maps a name to its typed config
(method-level settings), its builder and the loss kinds it can compose with.

A builder receives the method's config, the five constructed parts (``augment``,
``encoder``, ``extract``, ``similarity``, ``loss``, plus ``loss_kind``) and returns a module
with ``training_loss(images, generator) -> {"loss": ...}`` and, where it keeps a target
network, ``after_step(step, total_steps)`` which the training loop calls after each
optimizer step.
"""

from __future__ import annotations

from csl.methods.barlow_twins import BarlowTwins, BarlowTwinsMethodConfig, build_barlow_twins
from csl.methods.byol import BYOL, BYOLConfig, build_byol
from csl.methods.simclr import SimCLR, SimCLRConfig, build_simclr
from csl.methods.simsiam import SimSiam, SimSiamConfig, build_simsiam
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
}

__all__ = ["METHODS", "SimCLR", "BYOL", "SimSiam", "BarlowTwins"]
