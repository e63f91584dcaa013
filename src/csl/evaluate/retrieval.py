"""Retrieval with frozen features: test images query the training set by cosine similarity.

- recall@k (the metric-learning definition, e.g. Musgrave et al. 2020, arXiv 2003.08505): the
  fraction of queries with at least one same-class image among their ``k`` nearest.
- mAP@R (Musgrave et al. 2020, §3.2): for a query whose class has ``R`` images in the database,
  ``(1/R) * sum_{i=1..R} P@i * rel(i)`` over its ``R`` nearest, averaged over queries.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F


@torch.no_grad()
def nearest(queries: torch.Tensor, database: torch.Tensor, k: int, chunk: int = 512) -> torch.Tensor:
    """Indices ``(M, k)`` of each query's ``k`` most cosine-similar database rows, most similar first."""
    db = F.normalize(database.float(), dim=1)
    out = []
    for i in range(0, queries.shape[0], chunk):
        q = F.normalize(queries[i:i + chunk].float(), dim=1)
        out.append((q @ db.T).topk(k, dim=1).indices)
    return torch.cat(out)


@torch.no_grad()
def retrieval_metrics(queries: torch.Tensor, query_labels: torch.Tensor, database: torch.Tensor,
                      database_labels: torch.Tensor, ks: list[int], chunk: int = 256) -> dict[str, float]:
    """``{"recall_at_<k>" for k in ks, "map_at_r"}`` (see the module docstring)."""
    db = F.normalize(database.float(), dim=1)
    counts = torch.bincount(database_labels, minlength=int(max(query_labels.max(), database_labels.max())) + 1)
    r_max = int(counts[query_labels].max())
    depth = min(max(max(ks), r_max), db.shape[0])
    hits = {k: 0.0 for k in ks}
    ap_sum = 0.0
    for i in range(0, queries.shape[0], chunk):
        q = F.normalize(queries[i:i + chunk].float(), dim=1)
        y = query_labels[i:i + chunk]
        idx = (q @ db.T).topk(depth, dim=1).indices
        rel = (database_labels[idx] == y[:, None]).float()  # (m, depth)
        for k in ks:
            hits[k] += float(rel[:, :k].amax(1).sum())
        r = counts[y].clamp_min(1)  # (m,)
        pos = torch.arange(1, depth + 1, dtype=torch.float32)
        within = (pos[None, :] <= r[:, None]).float()
        prec = rel.cumsum(1) / pos[None, :]
        ap_sum += float(((prec * rel * within).sum(1) / r).sum())
    m = queries.shape[0]
    return {**{f"recall_at_{k}": hits[k] / m for k in ks}, "map_at_r": ap_sum / m}


def image_grid(rows: list[np.ndarray], frames: list[np.ndarray] | None = None, gap_after: int | None = None,
               scale: int = 3) -> bytes:
    """A PNG of image rows: ``rows[i]`` uint8 ``(K_i, C, H, W)`` (rows may be shorter than the
    longest: the rest stays blank); ``frames[i]`` ``(K_i, 3)`` uint8 frame colours (None: no
    frames); ``gap_after``: a gap after that many images of each row (a query apart from its
    neighbours)."""
    from PIL import Image

    _, _, h, w = rows[0].shape
    b = 2  # frame width
    cell_h, cell_w = h + 2 * b, w + 2 * b
    k = max(len(r) for r in rows)
    gap = cell_w // 2 if gap_after is not None else 0
    canvas = np.full((len(rows) * (cell_h + 2), cell_w * k + gap, 3), 255, dtype=np.uint8)

    def rgb(img: np.ndarray) -> np.ndarray:
        img = img.transpose(1, 2, 0)
        return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img[:, :, :3]

    for i, row in enumerate(rows):
        top = i * (cell_h + 2)
        for j, img in enumerate(row):
            left = cell_w * j + (gap if gap_after is not None and j >= gap_after else 0)
            if frames is not None:
                canvas[top:top + cell_h, left:left + cell_w] = frames[i][j]
            canvas[top + b:top + b + h, left + b:left + b + w] = rgb(img)
    image = Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def neighbour_grid(query_images: np.ndarray, neighbour_images: np.ndarray, wrong: np.ndarray | None,
                   scale: int = 3) -> bytes:
    """A PNG: one row per query (the query, a gap, then its neighbours), wrong-class neighbours
    framed in red and right ones in green (``wrong`` None: no frames, for data without labels).
    ``query_images`` uint8 ``(Q, C, H, W)``, ``neighbour_images`` ``(Q, K, C, H, W)``, ``wrong``
    bool ``(Q, K)``."""
    rows = [np.concatenate([query_images[i:i + 1], neighbour_images[i]]) for i in range(len(query_images))]
    frames = None
    if wrong is not None:
        white = np.array([[255, 255, 255]], dtype=np.uint8)
        colour = np.where(wrong[..., None], np.array([220, 30, 30], np.uint8), np.array([40, 160, 40], np.uint8))
        frames = [np.concatenate([white, colour[i]]) for i in range(len(rows))]
    return image_grid(rows, frames, gap_after=1, scale=scale)
