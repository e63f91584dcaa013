"""One image file of a collection, decoded the same way whatever its format.

JPEG, PNG (8- or 16-bit, palette, alpha), WebP, BMP, TIFF, GIF (first frame), PPM/PGM go
through PIL with these rules, in order:

1. the header is checked first: more than ``max_pixels`` pixels is refused as a
   decompression bomb (PIL's own guard, made an error at its warning threshold, 89.5 MP);
2. the whole file is decoded (a truncated file is an error, never padded with grey);
3. the EXIF orientation is applied (a photo taken upright is stored upright);
4. the pixels become 8-bit ``L`` (grayscale) or ``RGB``: 16-bit samples are scaled by
   255/65535 (PIL's own ``convert`` clips them at 255), palettes are expanded, CMYK and YCbCr
   are converted, and transparency is composited over white;
5. a side shorter than ``min_side`` is refused; with ``max_side`` the shorter side is
   reduced to it (aspect kept, antialiased).

:func:`encode` gives the bytes a shard stores: the original JPEG bytes when decoding them
gives exactly the normalised image (a plain baseline/progressive JPEG of the target mode, no
rotation, no resize), otherwise a lossless PNG of the normalised image.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
MAX_PIXELS = 89_478_485  # PIL's Image.MAX_IMAGE_PIXELS: 0.25 GiB of RGBA at 8 bits


class ImageFileError(ValueError):
    """A file that is not a usable image; the message names the problem (the caller names the file)."""


@dataclass
class Decoded:
    """A normalised image: ``pixels`` is uint8 ``(H, W)`` (L) or ``(H, W, 3)`` (RGB)."""

    image: Image.Image
    gray_source: bool  # the file itself was grayscale (for ``color: auto``)
    kept_as_is: bool  # the file's bytes decode to exactly this image (a JPEG of the target mode)
    fmt: str  # PIL's format name: JPEG, PNG, ...


def is_gray(img: Image.Image) -> bool:
    """Whether a file holds grayscale pixels: a gray mode, or a palette of gray entries only."""
    if img.mode in GRAY_MODES:
        return True
    if img.mode in ("P", "PA"):
        pal = np.asarray(img.getpalette() or [0, 0, 0], dtype=np.int32).reshape(-1, 3)
        return bool((pal[:, 0] == pal[:, 1]).all() and (pal[:, 1] == pal[:, 2]).all())
    return False


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer grayscale (``I;16*``, ``I``: PNG's 16-bit) and float ``F`` -> ``L``,
    scaled to the full 8-bit range instead of clipped."""
    arr = np.asarray(img)
    if img.mode == "F":
        scaled = np.clip(arr, 0.0, 1.0) * 255.0 if arr.max(initial=0.0) <= 1.0 else np.clip(arr, 0, 255)
        return Image.fromarray(np.round(scaled).astype(np.uint8), "L")
    # PNG's 16-bit grayscale decodes to mode I (int32) or I;16 with values 0..65535
    arr = arr.astype(np.int64)
    return Image.fromarray(((np.clip(arr, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8), "L")


def _flatten(img: Image.Image, mode: str) -> Image.Image:
    """Any PIL mode -> ``mode`` (``L`` or ``RGB``), transparency composited over white."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = _to_8bit(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode == "1":
        img = img.convert("L")
    if img.mode != mode:
        img = img.convert(mode)  # RGB <-> L (ITU-R 601-2 luma), CMYK/YCbCr -> RGB
    return img


def decode(data: bytes, mode: str | None, min_side: int = 16, max_side: int | None = None,
           max_pixels: int = MAX_PIXELS) -> Decoded:
    """Decode and normalise one file's bytes (the module's rules); ``mode`` is ``L``, ``RGB``, or
    None for the file's own kind (gray files as ``L``, others as ``RGB``). Raises
    :class:`ImageFileError` naming the problem and the fix."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img: Image.Image = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise ImageFileError(f"{w}x{h} pixels is more than data.max_pixels ({max_pixels}); PIL's "
                                     "decompression-bomb guard. Raise data.max_pixels if the image is genuine")
            fmt = str(img.format or "")
            orientation = img.getexif().get(0x0112, 1)
            img.load()
        except ImageFileError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageFileError(f"refused as a decompression bomb ({e}); raise data.max_pixels if the "
                                 "image is genuine") from None
        except UnidentifiedImageError:
            raise ImageFileError("is not an image PIL can read (wrong extension, or not an image at all); "
                                 "remove it or convert it") from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ImageFileError(f"is corrupt or truncated ({e}); replace or remove it") from None
    gray = is_gray(img)
    target = mode or ("L" if gray else "RGB")
    source_mode = img.mode
    img = ImageOps.exif_transpose(img) if orientation != 1 else img
    img = _flatten(img, target)
    if min(img.size) < min_side:
        raise ImageFileError(f"is {img.size[0]}x{img.size[1]}: a side is shorter than data.min_side "
                             f"({min_side}); remove it or lower data.min_side")
    resized = False
    if max_side is not None and min(img.size) > max_side:
        s = max_side / min(img.size)
        img = img.resize((max(1, round(img.size[0] * s)), max(1, round(img.size[1] * s))),
                         Image.Resampling.LANCZOS)
        resized = True
    kept = fmt == "JPEG" and source_mode == target and orientation == 1 and not resized
    return Decoded(img, gray, kept, fmt)


def encode(decoded: Decoded, original: bytes) -> tuple[bytes, str]:
    """``(bytes, extension)`` a shard stores for ``decoded``: the original JPEG, or a lossless PNG."""
    if decoded.kept_as_is:
        return original, "jpg"
    buf = io.BytesIO()
    decoded.image.save(buf, format="PNG", compress_level=1)  # lossless; level 1: fast to write
    return buf.getvalue(), "png"


def pixels(img: Image.Image) -> np.ndarray:
    """``uint8 (C, H, W)`` of a normalised image."""
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
