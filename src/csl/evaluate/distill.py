"""The distillation loss of SimCLR v2 (Chen et al. 2020, arXiv 2006.10029, §2.3, Eq. 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float = 1.0) -> torch.Tensor:
    """``-(1/N) sum_i sum_y P^T(y|x_i; tau) log P^S(y|x_i; tau)`` with ``P(y|x; tau) =
    softmax(logits / tau)``; both logits ``(N, C)``; the teacher gets no gradient. Scalar."""
    target = F.softmax(teacher_logits.detach().float() / temperature, dim=1)
    return -(target * F.log_softmax(student_logits.float() / temperature, dim=1)).sum(1).mean()
