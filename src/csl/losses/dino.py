"""DINO's self-distillation loss (Caron et al., 2021, arXiv 2104.14294)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dino_loss(
    student: list[torch.Tensor],
    teacher: list[torch.Tensor],
    center: torch.Tensor,
    student_temperature: float = 0.1,
    teacher_temperature: float = 0.04,
) -> torch.Tensor:
    r"""Cross-entropy between the centred, sharpened teacher and the student (Eq. 1 and 3):

    .. math::
        \mathcal{L} = \frac{1}{|P|} \sum_{(t, s) \in P}
            - P_t \cdot \log P_s, \quad
        P_t = \mathrm{softmax}((g_t - c) / \tau_t), \;
        P_s = \mathrm{softmax}(g_s / \tau_s)

    over pairs ``P`` of a teacher view ``t`` (global crops only) and a student view ``s``
    that is a different view; teacher views are assumed to be the first ``len(teacher)``
    student views. Teacher outputs receive no gradient. The centre ``c`` is state kept by the
    caller (updated with momentum 0.9 from the teacher's batch mean); the paper's temperatures
    are ``tau_s = 0.1`` and ``tau_t`` warmed up from 0.04 to 0.04-0.07.

    Args:
        student: views ``(N, K)`` each (global crops first, then local crops).
        teacher: global views ``(N, K)`` each (at least one; DINO uses two).
        center: ``(K,)``.
    """
    if not teacher or len(student) < 2:
        raise ValueError("DINO needs at least one teacher view and two student views")
    targets = [F.softmax((t.detach().float() - center) / teacher_temperature, dim=1) for t in teacher]
    logs = [F.log_softmax(s.float() / student_temperature, dim=1) for s in student]
    total = torch.zeros((), device=center.device)
    pairs = 0
    for ti, p_t in enumerate(targets):
        for si, log_p_s in enumerate(logs):
            if si == ti:
                continue  # the same view is not a pair
            total = total + (-(p_t * log_p_s).sum(dim=1)).mean()
            pairs += 1
    return total / pairs
