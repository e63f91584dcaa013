"""Collectives for computing losses over the global batch, with gradients right.

The rule every method follows: gather the per-rank embeddings with :func:`gather` (an
autograd-aware all-gather) and compute the loss of the *global* batch on every rank. Each rank
then holds the same loss; the gather's backward sums the gradient of every rank's copy into
the rank that owns the rows (``W`` times the single-process gradient), and DDP's average over
``W`` ranks gives exactly the single-process gradient of the global loss. (This avoids the
traps other libraries fell into: a plain ``all_gather`` that carries no gradient, positives at
the wrong offset after gathering, an ``all_reduce`` that shrinks gradients by the world size.)

Every function is the identity on one process, so single-process code pays nothing.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def launch_rank() -> int:
    """This process's global rank as the launcher states it (``RANK`` from torchrun or the
    PyTorchJob operator, ``LOCAL_RANK`` from Lightning's own launcher), before any process
    group exists: 0 on a single process. Rank 0 alone logs to MLflow and writes outputs."""
    import os

    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))


def init_after_elastic_restart(backend: str) -> bool:
    """Under torchrun, after a restart (``TORCHELASTIC_RESTART_COUNT`` > 0), create the default
    process group on the agent's store under a prefix of this attempt; returns True if it did.

    The agent keeps its store across restarts of the worker group, so a restarted rank can read
    the previous attempt's address of a peer from it and fail to connect ("Gloo connectFullMesh
    failed ... Connection refused", or a hang): seen here in a third of the restarts. Keys under
    ``csl/attempt_<n>`` cannot be stale. Lightning then finds the group initialized and uses it.
    """
    import os
    from datetime import timedelta

    attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
    if attempt == 0 or not dist.is_available() or dist.is_initialized() or "MASTER_ADDR" not in os.environ:
        return False
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                          int(os.environ["WORLD_SIZE"]), is_master=False, timeout=timedelta(minutes=10))
    dist.init_process_group(backend, store=dist.PrefixStore(f"csl/attempt_{attempt}", store),
                            rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]))
    return True


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class _GatherWithGrad(torch.autograd.Function):
    """``(B, ...) -> (W*B, ...)`` in rank order; backward: the sum over ranks of the gradient
    of this rank's rows (all-reduce then slice: works on every backend, gloo included)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.rows = x.shape[0]
        ctx.rank = dist.get_rank()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


class _AllReduceWithGrad(torch.autograd.Function):
    """Sum over ranks; every rank's output depends on every input, so backward sums too."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = x.contiguous().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def gather(x: torch.Tensor) -> torch.Tensor:
    """All ranks' rows, concatenated in rank order; differentiable (a tensor without grad,
    e.g. momentum-encoder keys, simply gets none). Every rank must pass the same shape."""
    if world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)  # type: ignore[no-any-return]


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum over ranks (batch-norm statistics, cross-correlations)."""
    if world_size() == 1:
        return x
    return _AllReduceWithGrad.apply(x)  # type: ignore[no-any-return]


def gather_all(xs: list[torch.Tensor]) -> list[torch.Tensor]:
    """:func:`gather` of each tensor of a list (one entry per view)."""
    return [gather(x) for x in xs]
