"""The method contract: what the training loop gives a method and which hooks it calls.

A method is an ``nn.Module`` that composes the five parts (:class:`Parts`) and subclasses
:class:`Method`, whose hooks are all declared here with no-op defaults: a method overrides only
what it uses, and the loop (:mod:`csl.train.module`, :mod:`csl.train.fit`) calls every hook of
every method, never by looking one up with ``getattr``.

Per step, in order::

    before_step(step, total_steps, steps_per_epoch)   # step-dependent settings
    training_loss(batch, generator) -> {"loss": ...}  # forward; the loop runs backward
    after_backward()                                  # e.g. drop the gradients of frozen parts
    (optimizer step)
    after_step(step, total_steps) -> {name: value}    # EMA targets; values are logged

Before training ``check_dataset(n_train, labelled)``; after each epoch the health check embeds
held-out images with ``health_embedding(x)``; between epochs, when
``wants_features(epoch)`` is true, ``on_epoch_features(epoch, features)`` with the features of the
whole training set (:mod:`csl.train.features`: eval mode, batched, on the training device; under
DDP each rank computes its share and the shares are gathered, so every rank receives the same
``(n_train, D)`` tensor in dataset order).

A method that needs labels or sample indices says so in :attr:`Method.needs`; the data path
then loads them into the :class:`Batch` (and only then), and a dataset without labels is
refused before training. State (queues, prototypes, centres) lives in registered buffers, so
it is checkpointed with the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, NamedTuple

import torch
from torch import nn

from csl.errors import ConfigError


class Batch(NamedTuple):
    """One training batch. ``images``: uint8 ``(N, C, H, W)``; ``labels``: int64 ``(N,)`` and
    ``indices`` (rows of the training set): int64 ``(N,)``, present only when the method's
    :attr:`Method.needs` asks for them. A NamedTuple, so Lightning moves it to the device."""

    images: torch.Tensor
    labels: torch.Tensor | None = None
    indices: torch.Tensor | None = None


@dataclass(frozen=True)
class Needs:
    """What a method needs from the data beyond images."""

    labels: bool = False
    indices: bool = False


@dataclass(frozen=True)
class Parts:
    """The five constructed parts and the facts a builder needs about them.

    ``make_extract(in_dim)`` builds another head of the same extraction spec for another input
    width (AMDIM/YADIM's per-scale heads); ``loss_kind`` is the registry's kind of the loss
    (:mod:`csl.losses`).
    """

    augment: nn.Module
    encoder: nn.Module
    extract: nn.Module
    similarity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    loss: Callable[..., torch.Tensor]
    loss_kind: str
    make_extract: Callable[[int], nn.Module]
    image_size: int
    in_channels: int


class Method(nn.Module):
    """Base of every method: the hooks the training loop calls, each a no-op by default."""

    needs: ClassVar[Needs] = Needs()
    encoder: nn.Module  # the network that is kept (registered, evaluated) after pretraining

    def training_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``batch`` on the training device, ``generator`` the augmentation RNG (same seed on every
        rank) -> ``{"loss": scalar, ...}``."""
        raise NotImplementedError

    def before_step(self, step: int, total_steps: int, steps_per_epoch: int) -> None:
        """Before global step ``step`` (0-based) of ``total_steps``: step-dependent settings. A pure
        function of the step, so that a resumed run continues with the same values."""

    def after_backward(self) -> None:
        """After the backward pass, before the optimizer step."""

    def after_step(self, step: int, total_steps: int) -> dict[str, float]:
        """After the optimizer step of global step ``step``: explicit state updates (EMA). The
        returned values are logged (on logging steps only: no device read per step)."""
        return {}

    def check_dataset(self, n_train: int, labelled: bool) -> None:
        """Before training: refuse a dataset the method cannot train on, naming the fix.
        ``labelled``: the dataset has at least two classes. The default refuses an unlabelled
        dataset when the method needs labels."""
        if self.needs.labels and not labelled:
            raise ConfigError(f"method {type(self).__name__} needs labels, and this dataset has none (one class): "
                              "use a labelled dataset (an ImageFolder with one folder per class) or a "
                              "self-supervised method")

    def wants_features(self, epoch: int) -> bool:
        """Whether ``on_epoch_features`` should run before epoch ``epoch`` (0-based)."""
        return False

    def feature_net(self, x: torch.Tensor) -> torch.Tensor:
        """The features that ``on_epoch_features`` receives, of normalized float images ``x``;
        by default the encoder's. Called in eval mode under ``torch.no_grad``."""
        return self.encoder(x)

    def health_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding the online health check and collapse guard measure (:mod:`csl.train.health`),
        of normalized float images ``x``: the encoder's by default. A method whose collapse shows
        first in its projection (SimSiam: Chen & He 2021, Fig. 2 measures the projector's output)
        returns that. Called in eval mode under ``torch.no_grad``."""
        return self.encoder(x)

    def on_epoch_features(self, epoch: int, features: torch.Tensor) -> None:
        """Before epoch ``epoch``: ``features`` ``(n_train, D)`` of the whole training set in
        dataset order, the same on every rank (e.g. PCL's k-means)."""


def require_method(module: Any, name: str) -> Method:
    """A builder's result must follow the contract (a bug in a method, not user input)."""
    if not isinstance(module, Method):
        raise TypeError(f"method '{name}' built a {type(module).__name__}, which is not a csl.methods.base.Method")
    return module
