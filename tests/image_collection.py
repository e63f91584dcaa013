"""Tiny unlabeled image collections in every format the ``images`` dataset reads, made by the tests.

Each image is a smooth colour gradient plus a per-image pattern (so crops and resizes are
checkable and no two images are alike), of a random size 32-96 px and aspect ratio.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

FORMATS = ("jpg", "png", "webp", "bmp", "tif")


def picture(w: int, h: int, seed: int) -> np.ndarray:
    """``uint8 (h, w, 3)``: gradients and a seed-dependent checker pattern."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = rng.integers(0, 128, 3)
    img = np.stack([base[0] + 120 * x / w, base[1] + 120 * y / h, base[2] + 60 * ((x // 8 + y // 8) % 2)], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_collection(root: Path, n: int = 120, nested: bool = False, seed: int = 0) -> list[Path]:
    """``n`` RGB images of mixed sizes and formats under ``root`` (in dated sub-folders when
    ``nested``), plus a text file that must be ignored; returns the image paths."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w, h = int(rng.integers(32, 97)), int(rng.integers(32, 97))
        folder = root / (f"2026-{11 + i % 2}/batch{i % 3}" if nested else "")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"img{i:04d}.{FORMATS[i % len(FORMATS)]}"
        Image.fromarray(picture(w, h, seed * 10_000 + i)).save(path, quality=95)
        out.append(path)
    (root / "README.txt").write_text("not an image")
    return out


def gray16_png(values: np.ndarray) -> bytes:
    """A 16-bit grayscale PNG of ``uint16 (h, w)`` values."""
    buf = io.BytesIO()
    Image.fromarray(values.astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG whose header claims ``width x height`` pixels (a decompression bomb's header)."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def encoded(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()
