"""NT-Xent, the normalized temperature-scaled cross-entropy of SimCLR."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from csl.similarity.cosine import cosine_similarity_matrix

SimilarityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def nt_xent(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    temperature: float = 0.5,
    similarity: SimilarityFn = cosine_similarity_matrix,
) -> torch.Tensor:
    r"""NT-Xent loss (Chen et al., 2020, "A Simple Framework for Contrastive Learning of
    Visual Representations", arXiv 2002.05709, Eq. 1 and Algorithm 1).

    The two views of the ``N`` images form ``2N`` anchors. For the positive pair
    ``(i, j)``

    .. math::
        \ell_{i,j} = -\log \frac{\exp(\mathrm{sim}(z_i, z_j)/\tau)}
                                {\sum_{k=1}^{2N} \mathbb{1}_{[k \ne i]} \exp(\mathrm{sim}(z_i, z_k)/\tau)}

    and the loss is the mean of :math:`\ell` over all ``2N`` anchors
    (:math:`\frac{1}{2N}\sum_k [\ell(2k-1, 2k) + \ell(2k, 2k-1)]`).
    ``sim`` defaults to cosine similarity; the paper's CIFAR-10 temperature is 0.5
    (Appendix B.9), ImageNet 0.1.

    Args:
        z_a: ``(N, D)`` projections of the first views.
        z_b: ``(N, D)`` projections of the second views; row ``i`` is the positive of
            ``z_a[i]``.
        temperature: :math:`\tau > 0`.
        similarity: ``(A, D), (B, D) -> (A, B)`` similarity matrix.

    Returns:
        A scalar tensor (fp32 whatever the input precision).
    """
    if z_a.shape != z_b.shape or z_a.dim() != 2:
        raise ValueError(f"z_a and z_b must both be (N, D); got {tuple(z_a.shape)}, {tuple(z_b.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = z_a.shape[0]
    z = torch.cat([z_a, z_b], dim=0).float()  # z: 2N x D, loss math in fp32
    logits = similarity(z, z) / temperature  # logits: 2N x 2N
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))  # exclude k == i
    # the positive of anchor i is i + N for the first views and i - N for the second
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)
