"""PCL's ProtoNCE and the prototypes' concentration (Li et al., ICLR 2021, "Prototypical
Contrastive Learning of Unsupervised Representations", arXiv 2005.04966; official code
salesforce/PCL ``main_pcl.py`` and ``pcl/builder.py``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def concentration(dist_sq: torch.Tensor, assign: torch.Tensor, k: int, temperature: float) -> torch.Tensor:
    r"""Per-cluster concentration :math:`\phi` (Eq. 12), as the official ``run_kmeans`` estimates it:

    .. math::
        \phi_c = \frac{\sum_{z \in c} \lVert v_z - c \rVert_2}{Z_c \log(Z_c + \alpha)}, \quad \alpha = 10

    (the mean distance over the ``Z_c`` points of cluster ``c``, over :math:`\log(Z_c + 10)`); a cluster
    of at most one point gets the largest :math:`\phi` of the others; then :math:`\phi` is clipped to
    its 10th-90th percentiles and scaled so that its mean is ``temperature``.

    Args:
        dist_sq: ``(N,)`` squared distances of each point to its centroid (faiss's ``D``).
        assign: ``(N,)`` cluster of each point; k: the number of clusters.

    Returns:
        ``(k,)`` float32.
    """
    d = dist_sq.float().clamp_min(0).sqrt()
    sums = torch.zeros(k, device=d.device).index_add_(0, assign, d)
    counts = torch.bincount(assign, minlength=k).float()
    phi = sums / counts.clamp_min(1) / torch.log(counts + 10)
    single = counts <= 1
    phi = torch.where(single, phi[~single].max() if bool((~single).any()) else torch.ones(()), phi)
    lo, hi = torch.quantile(phi, 0.1), torch.quantile(phi, 0.9)  # numpy's percentile: linear
    phi = phi.clamp(lo, hi)
    return temperature * phi / phi.mean()


def sample_negative_prototypes(pos_ids: torch.Tensor, k: int, r: int, generator: torch.Generator) -> torch.Tensor:
    """``min(r, k - B)`` prototype ids drawn uniformly without replacement from those that are not the
    positive of any of the ``B`` queries (the official ``sample(set(all) - set(pos), r)``; the count is
    fixed by the shapes, so nothing is read back to the host)."""
    count = max(0, min(r, k - pos_ids.shape[0]))
    scores = torch.rand(k, generator=generator, device=generator.device).to(pos_ids.device)
    scores[pos_ids] = -1.0  # never a positive of the batch
    return scores.topk(count).indices


def proto_nce(query: torch.Tensor, pos_ids: torch.Tensor, neg_ids: torch.Tensor, centroids: torch.Tensor,
              density: torch.Tensor) -> torch.Tensor:
    r"""One granularity's ProtoNCE term (Eq. 11's prototype part), as ``pcl/builder.py`` computes it:
    logits of every query against the batch's positive prototypes and the sampled negatives,

    .. math::
        s_{ij} = q_i \cdot c_j / \phi_j, \quad j \in [\mathrm{pos}_1..\mathrm{pos}_B, \mathrm{neg}_1..\mathrm{neg}_r]

    and cross-entropy with target column ``i`` (query ``i``'s own prototype; the other queries'
    positives are negatives of ``i``, even when they are the same prototype, as in the official code).

    Args:
        query: ``(B, D)`` (normalized here); pos_ids: ``(B,)``; neg_ids: ``(r,)``;
        centroids: ``(k, D)`` normalized; density: ``(k,)`` :math:`\phi`.
    """
    q = F.normalize(query.float(), dim=1)
    ids = torch.cat([pos_ids, neg_ids])
    logits = q @ centroids[ids].float().T / density[ids].float()[None, :]
    return F.cross_entropy(logits, torch.arange(q.shape[0], device=q.device))


__all__ = ["concentration", "proto_nce", "sample_negative_prototypes"]
