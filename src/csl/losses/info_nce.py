"""InfoNCE with momentum-encoder keys: MoCo v1/v2 with a queue of negatives (He et al., 2020,
arXiv 1911.05722, Eq. 1; Chen et al., 2020, arXiv 2003.04297) and MoCo v3 with in-batch
negatives (Chen et al., 2021, arXiv 2104.02057, Eq. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor | None = None,
             temperature: float = 0.2, synthetic: torch.Tensor | None = None,
             positives: torch.Tensor | None = None,
             mix: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    r"""MoCo's contrastive loss for ``N`` queries and their positive keys,

    .. math::
        \mathcal{L}_q = -\log \frac{\exp(q \cdot k_+ / \tau)}
                                   {\exp(q \cdot k_+ / \tau) + \sum_{k_-} \exp(q \cdot k_- / \tau)}

    averaged over the queries. With a ``queue`` (MoCo v1/v2) the negatives ``k_-`` are the
    ``K`` queued keys; with ``queue=None`` (MoCo v3) they are the other ``N - 1`` keys of the
    batch, i.e. cross-entropy of ``q k^T / tau`` with the diagonal as targets. ``q``, ``k`` and
    the queue are L2-normalized here. MoCo v1: ``tau = 0.07``, 65,536 keys; v2: ``tau = 0.2``;
    v3 (ResNet-50): ``tau = 1.0`` and the loss is multiplied by ``2 tau``. Keys come from the
    momentum encoder: pass ``key.detach()`` where the method has no gradient through the key.

    Args:
        query: ``(N, D)``; key: ``(N, D)``, row ``i`` the positive of ``query[i]``;
        queue: ``(K, D)`` negatives (``K`` may be 0), or ``None`` for in-batch negatives.
        synthetic: ``(N, S, D)`` more negatives per query, appended after the queue's (MoCHi's
            mixes, :func:`csl.losses.mochi.hard_negative_mixes`); with a queue only.
        positives: bool ``(N, K)``: queue entries that are positives of query ``i`` too (KCL's
            ``k`` same-class keys, :func:`csl.losses.kcl.k_same_class`). The target is then uniform
            over the key and the marked entries, ``1 / (1 + k_i)`` each, and the loss is the soft
            cross-entropy :math:`-\sum_j y_{ij} \log \mathrm{softmax}(\ell_i)_j` (KCL); without it
            the key is the one positive.
        mix: ``(perm, lam)``, i-Mix on MoCo (arXiv 2010.08887; kibok90/imix): the query is of the
            mixed input ``lam x_i + (1 - lam) x_perm(i)``, the batch's keys join the candidates
            (before the queue's), and the target is ``lam`` on key ``i`` and ``1 - lam`` on key
            ``perm(i)``.

    Returns:
        Scalar (fp32).
    """
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(key.float(), dim=1)
    if mix is not None:  # i-Mix: in-batch keys (+ queue), mixed virtual labels
        perm, lam = mix
        logits = q @ k.T
        if queue is not None:
            logits = torch.cat([logits, q @ F.normalize(queue.float(), dim=1).T], dim=1)
        logits = logits / temperature  # N x (N [+ K])
        own = torch.arange(q.shape[0], device=q.device)
        lam = lam.to(logits.device, torch.float32)
        return lam * F.cross_entropy(logits, own) + (1 - lam) * F.cross_entropy(logits, perm.to(q.device))
    if queue is None:
        if synthetic is not None:
            raise ValueError("synthetic negatives are mixed from a queue: pass the queue too")
        logits = q @ k.T / temperature  # logits: N x N, positives on the diagonal
        targets = torch.arange(q.shape[0], device=q.device)
        return F.cross_entropy(logits, targets)
    negatives = F.normalize(queue.float(), dim=1)
    pos = (q * k).sum(dim=1, keepdim=True)  # pos: N x 1
    neg = q @ negatives.T  # neg: N x K
    if synthetic is not None:  # per-query negatives: N x S
        neg = torch.cat([neg, torch.einsum("nd,nsd->ns", q, F.normalize(synthetic.float(), dim=2))], dim=1)
    logits = torch.cat([pos, neg], dim=1) / temperature  # logits: N x (1+K[+S])
    if positives is not None:  # KCL: soft target over the key and the queue's same-class keys
        mask = torch.cat([torch.ones_like(positives[:, :1]), positives], dim=1).float()  # N x (1+K)
        if synthetic is not None:
            mask = torch.cat([mask, mask.new_zeros(mask.shape[0], synthetic.shape[1])], dim=1)
        target = mask / mask.sum(1, keepdim=True)
        return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
    targets = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)  # the positive is column 0
    return F.cross_entropy(logits, targets)
