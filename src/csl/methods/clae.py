"""CLAE (Ho & Vasconcelos, NeurIPS 2020, "Contrastive Learning with Adversarial Examples", arXiv
2010.12050; official code chihhuiho/CLAE ``SimCLR/main.py``, ``gen_adv``): SimCLR plus a third,
adversarial view.

From the anchor view ``x_i``, one FGSM step makes the view that most increases the contrastive
loss against the anchor: ``x_adv = clip(x_i + eps * sign(grad_x L(z_i, z(x))))`` at ``x = x_i``,
in pixel units (``eps`` is a fraction of the [0, 1] range, so ``eps / std`` per channel on the
normalized views, and the clip keeps pixels in [0, 1]). Adversarial inputs go through their own
batch norms (the official code's ``adv=True`` branch: a second set of BN layers, momentum 0.01);
the loss is ``L(z_i, z_j) + alpha * L(z_i, z_adv)`` with ``L`` the variant's contrastive loss.
Official settings: ``eps = 0.03``, ``alpha = 1``, NT-Xent ``tau = 0.5``, projection to 64-d.

The adversarial batch norms are kept beside the networks (``adv_bn``) and swapped in only for the
adversarial passes, so the encoder that is saved and registered is the plain one.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from csl.distributed import gather_all
from csl.errors import ConfigError
from csl.methods.base import Batch, Method, Parts
from csl.methods.views import embed_views, require_views


@dataclass(frozen=True)
class CLAEConfig:
    """``eps``: the FGSM step in pixel units ([0, 1] range); ``alpha``: the adversarial term's weight;
    ``adv_bn_momentum``: the adversarial batch norms' momentum (official: 0.01)."""

    eps: float = 0.03
    alpha: float = 1.0
    adv_bn_momentum: float = 0.01

    def validate(self, path: str) -> None:
        if self.eps <= 0 or self.alpha < 0 or not 0 < self.adv_bn_momentum <= 1:
            raise ConfigError(f"'{path}': need eps > 0, alpha >= 0 and 0 < adv_bn_momentum <= 1")


def _bn_paths(root: nn.Module) -> list[str]:
    return [n for n, m in root.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _swap(root: nn.Module, path: str, new: nn.Module) -> nn.Module:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    old = getattr(parent, name)
    setattr(parent, name, new)
    return old  # type: ignore[no-any-return]


class CLAE(Method):
    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(self, cfg: CLAEConfig, augment: nn.Module, encoder: nn.Module, head: nn.Module,
                 similarity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 loss: Callable[..., torch.Tensor], channels_last: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.augment = augment
        self.encoder = encoder
        self.head = head
        self.similarity = similarity
        self.loss_fn = loss
        self.channels_last = channels_last
        # the dataset's normalization, to take the FGSM step and the clip in pixel units
        self.register_buffer("pixel_mean", torch.as_tensor(augment.mean).float().view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.as_tensor(augment.std).float().view(1, -1, 1, 1), persistent=False)
        adv = {}
        for prefix, net in (("encoder", encoder), ("head", head)):
            for path in _bn_paths(net):
                bn = copy.deepcopy(net.get_submodule(path))
                assert isinstance(bn, nn.modules.batchnorm._BatchNorm)
                bn.momentum = cfg.adv_bn_momentum
                bn.reset_running_stats()
                adv[f"{prefix}.{path}".replace(".", "/")] = bn
        self.adv_bn = nn.ModuleDict(adv)

    @contextmanager
    def adversarial_bn(self) -> Iterator[None]:
        """The adversarial batch norms in place of the plain ones, for the passes inside."""
        nets = {"encoder": self.encoder, "head": self.head}
        swapped = []
        for key, bn in self.adv_bn.items():
            prefix, _, path = key.replace("/", ".").partition(".")
            swapped.append((nets[prefix], path, _swap(nets[prefix], path, bn)))
        try:
            yield
        finally:
            for net, path, plain in swapped:
                _swap(net, path, plain)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return embed_views([x], self.encoder, self.head, self.channels_last)[0]

    def adversarial_view(self, x_i: torch.Tensor) -> torch.Tensor:
        """One FGSM step from ``x_i`` (normalized views) against the anchor's embedding, through the
        adversarial batch norms; returned without gradient."""
        mean, std = self.pixel_mean, self.pixel_std
        x_i = x_i.detach()
        with self.adversarial_bn():
            with torch.no_grad():
                (z_i,) = gather_all([self._embed(x_i)])
            x = x_i.clone().requires_grad_(True)
            (z,) = gather_all([self._embed(x)])
            (grad,) = torch.autograd.grad(self.loss_fn(z_i, z, self.similarity), x)
        step = self.cfg.eps / std  # eps in pixel units, on the normalized scale
        lo, hi = (0 - mean) / std, (1 - mean) / std  # pixels stay in [0, 1]
        return torch.maximum(torch.minimum(x_i + step * grad.sign(), hi), lo).detach()

    def training_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        x_i, x_j = self.augment(batch.images, generator)[:2]
        x_adv = self.adversarial_view(x_i)
        z_i, z_j = gather_all(embed_views([x_i, x_j], self.encoder, self.head, self.channels_last))
        with self.adversarial_bn():
            (z_adv,) = gather_all([self._embed(x_adv)])
        plain = self.loss_fn(z_i, z_j, self.similarity)
        adversarial = self.loss_fn(z_i, z_adv, self.similarity)
        return {"loss": plain + self.cfg.alpha * adversarial, "adversarial": adversarial.detach()}


def build_clae(cfg: CLAEConfig, parts: Parts, channels_last: bool) -> CLAE:
    require_views(parts.augment, 2, "clae", same_size=True)
    if not hasattr(parts.augment, "mean"):
        raise ConfigError("method 'clae' needs an augmentation that normalizes with the dataset's mean and std")
    return CLAE(cfg, parts.augment, parts.encoder, parts.extract, parts.similarity, parts.loss, channels_last)
