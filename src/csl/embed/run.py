"""``csl embed``: images -> embeddings with their image paths, resumable.

The input (:mod:`csl.embed.inputs`) is cut into chunks of ``chunk`` images; each finished chunk's
embeddings are written atomically to ``.<out>.partial/chunk-NNNNNN.npy`` beside the output, with a
``job.json`` naming what is computed (encoder sha256 / model version, the input's path listing,
adaptation, batch size). A rerun of the same job skips the finished chunks; a different job
discards them. When every chunk is done the output is assembled atomically and the partial
directory removed:

* ``OUT.parquet``: one row per image, columns ``path`` (string) and ``embedding``
  (fixed-size list of float32), the job's manifest in the schema metadata (``csl.embed``);
* any other ``OUT``: a directory with ``embeddings.npy`` ``(N, D)`` float32, ``paths.txt`` (row i
  is the image of embedding i) and ``embed.json`` (the manifest).

The embeddings are computed exactly as the pipeline's feature extraction computes them
(:func:`csl.evaluate.features.extract_features`: the training data's normalization, bf16 autocast
where it pays, batches of ``batch_size``), so the same image gives the same numbers in both.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from csl.embed.inputs import ImageInput, decode, open_input
from csl.embed.load import load_encoder_with_source
from csl.encoders.saved import FeatureExtractor
from csl.errors import CslError
from csl.evaluate.features import extract_features
from csl.io.atomic import atomic_write_bytes, atomic_write_json

CHUNK = 8192


def best_device(requested: str = "auto") -> str:
    if requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise CslError(f"--device {requested}: no CUDA device is visible here; use --device cpu or auto")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def partial_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def images_for(extractor: FeatureExtractor, names: list[str], blobs: list[bytes],
               adapt: bool, steps: set[str]) -> np.ndarray:
    """Decoded ``uint8 (n, C, H, W)`` in the encoder's input shape. Without ``adapt`` an image of
    another shape is refused (naming it and the expected input); with it, converted as the transfer
    protocol does (:func:`csl.evaluate.adapt.adapt_images`), the steps collected in ``steps``."""
    from csl.evaluate.adapt import adapt_images

    shape = tuple(extractor.image_shape or ())
    c, h, w = shape
    out = np.empty((len(blobs), c, h, w), dtype=np.uint8)
    groups: dict[tuple[int, ...], list[int]] = {}
    arrays = []
    for i, (name, data) in enumerate(zip(names, blobs)):
        a = decode(data, name)  # as the image is: any conversion is adaptation
        if a.shape != shape and not adapt:
            raise CslError(f"image {name} is {'x'.join(map(str, a.shape))} (channels x height x width); this encoder "
                           f"takes {extractor.expected()}. Pass --adapt to convert channels (BT.601 luma or "
                           "replication) and resize (bilinear), as the transfer protocol does")
        arrays.append(a)
        groups.setdefault(a.shape, []).append(i)
    for g_shape, idx in groups.items():
        batch = np.stack([arrays[i] for i in idx])
        if g_shape != shape:
            if h != w:
                raise CslError(f"--adapt resizes to square inputs; this encoder takes {extractor.expected()}")
            batch, record = adapt_images(batch, c, h)
            steps.update(record["steps"])
        out[idx] = batch
    return out


def embed(uri: str, location: str, out: Path, batch_size: int = 1024, device: str = "auto", adapt: bool = False,
          chunk: int = CHUNK, progress: bool = True,
          on_chunk: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Embed every image of ``location`` with the encoder ``uri`` into ``out`` (see module doc); returns
    the manifest. ``on_chunk(k)`` is called after chunk ``k`` is saved."""
    from tqdm import tqdm

    if chunk < 1 or batch_size < 1:
        raise CslError("--chunk and --batch-size must be >= 1")
    extractor, source = load_encoder_with_source(uri)
    if extractor.image_shape is None:
        raise CslError(f"{uri} does not record its input shape; re-register it with this version of csl")
    inp = open_input(location)
    dev = best_device(device)
    n = len(inp.names)
    job = {"encoder": source.encoder_sha256 or source.model_version or source.uri, "input": str(location),
           "listing_sha256": inp.listing_sha256(), "count": n, "adapt": adapt, "batch_size": batch_size,
           "chunk": chunk}
    part = partial_dir(out)
    done: set[int] = set()
    if (part / "job.json").is_file():
        if json.loads((part / "job.json").read_text()) == job:
            done = {int(p.stem.split("-")[1]) for p in part.glob("chunk-*.npy")}
            print(f"resuming: {len(done)} of {-(-n // chunk)} chunks already embedded in {part}", flush=True)
        else:
            print(f"discarding {part}: it holds a run with another encoder, input or settings", flush=True)
            shutil.rmtree(part)
    part.mkdir(parents=True, exist_ok=True)
    atomic_write_json(part / "job.json", job)
    mean = extractor.mean.flatten().tolist()
    std = extractor.std.flatten().tolist()
    encoder = extractor.encoder.to(dev).eval()
    steps: set[str] = set()
    starts = list(range(0, n, chunk))
    bar = tqdm(total=n, desc="embed", unit="img", disable=not progress, mininterval=1.0)
    bar.update(sum(min(chunk, n - starts[k]) for k in done))
    computed, start_time = 0, time.perf_counter()
    try:
        for k, s in enumerate(starts):
            if k in done:
                continue
            stop = min(n, s + chunk)
            names = inp.names[s:stop]
            images = images_for(extractor, names, list(inp.read(s, stop)), adapt, steps)
            feats = extract_features(encoder, images, mean, std, batch_size, dev, progress=False).cpu().numpy()
            _save_npy(part / f"chunk-{k:06d}.npy", feats.astype(np.float32))
            computed += stop - s
            bar.update(stop - s)
            if on_chunk is not None:
                on_chunk(k)
    except BaseException:
        if not any(part.glob("chunk-*.npy")):  # nothing to resume from: leave nothing behind
            shutil.rmtree(part, ignore_errors=True)
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - start_time
    manifest = {"model": uri, "model_version": source.model_version, "encoder_sha256": source.encoder_sha256,
                "input": str(location), "input_kind": inp.kind, "count": n, "image_shape": list(extractor.image_shape),
                "dim": extractor.out_dim, "adapt": sorted(steps) if adapt else None, "batch_size": batch_size,
                "device": dev, "resumed_chunks": len(done), "embedded_now": computed,
                "seconds": round(seconds, 3), "images_per_s": round(computed / seconds, 1) if seconds > 0 else None}
    _assemble(part, inp, len(starts), out, manifest)
    shutil.rmtree(part, ignore_errors=True)
    return manifest


def _save_npy(path: Path, arr: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    atomic_write_bytes(path, buf.getvalue())


def _assemble(part: Path, inp: ImageInput, chunks: int, out: Path, manifest: dict[str, Any]) -> None:
    files = [part / f"chunk-{k:06d}.npy" for k in range(chunks)]
    if out.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        manifest["format"] = "parquet"
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        out.parent.mkdir(parents=True, exist_ok=True)
        schema = pa.schema([("path", pa.string()), ("embedding", pa.list_(pa.float32(), manifest["dim"]))],
                           metadata={"csl.embed": json.dumps(manifest)})
        try:
            with pq.ParquetWriter(tmp, schema) as writer:
                offset = 0
                for f in files:
                    arr = np.load(f)
                    emb = pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), manifest["dim"])
                    names = pa.array(inp.names[offset:offset + len(arr)])
                    writer.write_table(pa.Table.from_arrays([names, emb], schema=schema))
                    offset += len(arr)
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return
    from csl.io import atomic_dir

    manifest["format"] = "npy"
    with atomic_dir(out) as tmp_dir:
        mm = np.lib.format.open_memmap(tmp_dir / "embeddings.npy", mode="w+", dtype=np.float32,
                                       shape=(manifest["count"], manifest["dim"]))
        offset = 0
        for f in files:
            arr = np.load(f)
            mm[offset:offset + len(arr)] = arr
            offset += len(arr)
        mm.flush()
        del mm
        (tmp_dir / "paths.txt").write_text("".join(f"{name}\n" for name in inp.names))
        (tmp_dir / "embed.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
