"""i-Mix (Lee et al., ICLR 2021, "i-Mix: A Domain-Agnostic Strategy for Contrastive Representation
Learning", arXiv 2010.08887; official code kibok90/imix): input mixup with virtual labels."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

SimilarityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def imix_npair(mixed: torch.Tensor, keys: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor,
               similarity: SimilarityFn, temperature: float = 0.2) -> torch.Tensor:
    r"""i-Mix's N-pair loss (Sec. 3.1, Eq. 5, with SimCLR's N-pair form of the contrastive loss).

    Each image ``i`` is a class of its own (the virtual label :math:`v_i`, a one-hot over the batch).
    The query of the mixed input :math:`\tilde x_i = \lambda x_i + (1-\lambda) x_{\pi(i)}` (view 1)
    is scored against the keys of every image's other view (view 2), and the virtual label is mixed
    the same way:

    .. math::
        \ell = \frac{1}{N} \sum_i \Big[\lambda\, \mathrm{CE}\big(s_i, i\big) + (1-\lambda)\,
               \mathrm{CE}\big(s_i, \pi(i)\big)\Big], \qquad s_{ij} = \mathrm{sim}(\tilde z_i, z'_j) / \tau

    Official defaults: ``tau = 0.2``, ``lambda ~ Beta(1, 1)`` (CIFAR), then
    ``lambda = max(lambda, 1 - lambda)``.

    Args:
        mixed: ``(N, D)`` embeddings of the mixed view-1 inputs; keys: ``(N, D)`` of the view-2 inputs.
        perm: int ``(N,)``, the mixing partner :math:`\pi(i)`; lam: scalar tensor :math:`\lambda`.
        similarity: ``(A, D), (B, D) -> (A, B)``; temperature: :math:`\tau > 0`.

    Returns:
        A scalar tensor (fp32).
    """
    if mixed.shape != keys.shape or mixed.dim() != 2 or perm.shape != (mixed.shape[0],):
        raise ValueError(f"need mixed and keys (N, D) and perm (N,); got {tuple(mixed.shape)}, "
                         f"{tuple(keys.shape)}, {tuple(perm.shape)}")
    logits = similarity(mixed.float(), keys.float()) / temperature  # N x N
    own = torch.arange(mixed.shape[0], device=mixed.device)
    lam = lam.to(logits.device, torch.float32)
    return lam * F.cross_entropy(logits, own) + (1 - lam) * F.cross_entropy(logits, perm.to(logits.device))


def sample_beta(alpha: float, generator: torch.Generator, candidates: int = 16) -> torch.Tensor:
    r"""One draw of :math:`\mathrm{Beta}(\alpha, \alpha)` as a scalar tensor on the generator's device,
    from the generator alone and without reading anything back to the host (no sync per step):
    :math:`X/(X+Y)` with :math:`X, Y \sim \Gamma(\alpha)` by Marsaglia and Tsang's method
    (shape :math:`\alpha + 1`, then :math:`\cdot U^{1/\alpha}`), ``candidates`` proposals at once and
    the first accepted taken (a proposal is accepted with probability > 0.95)."""
    dev = generator.device
    a = alpha + 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / (9.0 * d) ** 0.5

    def gamma() -> torch.Tensor:
        x = torch.randn(candidates, generator=generator, device=dev)
        u = torch.rand(candidates, generator=generator, device=dev)
        v = (1 + c * x) ** 3
        ok = (v > 0) & (torch.log(u.clamp_min(1e-30)) < 0.5 * x * x + d - d * v + d * torch.log(v.clamp_min(1e-30)))
        first = torch.argmax(ok.to(torch.int8))  # the first accepted (or 0 if none: probability < 0.05^16)
        g = d * v.gather(0, first.reshape(1)).squeeze(0)  # no host read of the index
        boost = torch.rand((), generator=generator, device=dev) ** (1.0 / alpha)  # Gamma(alpha) from Gamma(alpha+1)
        return g * boost

    x, y = gamma(), gamma()
    return x / (x + y)
