"""The streaming path for datasets larger than memory: images/s and peak memory of reading
WebDataset shards of JPEG bytes (``csl.data.shards``) with batched decoding, against the size of
the dataset itself.

    python benchmarks/streaming.py [--source ../shared/datasets/cifar10-jpeg.zip] [--workers 2]

Shards the ImageFolder zip's train split once (into build/shards), then streams one epoch in
batches of 256 through a DataLoader with ``--workers`` workers (decoding there; on a GPU
machine pass ``--device cuda`` to decode with nvJPEG in the main process instead).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from csl.data import shards

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=str(REPO.parent / "shared" / "datasets" / "cifar10-jpeg.zip"))
    ap.add_argument("--out", default=str(REPO / "build" / "shards" / "cifar10-train"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--buffer", type=int, default=4096)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    print(f"command: python {' '.join(sys.argv)}")
    out = Path(args.out)
    if not (out / shards.INDEX).is_file():
        start = time.perf_counter()
        classes, samples = shards.imagefolder_samples(Path(args.source))
        index = shards.write_shards(samples, classes, out, 2000)
        print(f"sharded {index['num_samples']} images into {len(index['shards'])} shards in "
              f"{time.perf_counter() - start:.1f} s")
    size_mb = sum(f.stat().st_size for f in out.glob("*.tar")) / 2**20
    stream = shards.ShardStream(str(out), args.batch, 32, 3, buffer=args.buffer, device=args.device)
    loader = DataLoader(stream, batch_size=None, num_workers=0 if args.device != "cpu" else args.workers)
    start = time.perf_counter()
    n = 0
    for x, _ in loader:
        n += len(x)
    secs = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    decoded_mb = n * 3 * 32 * 32 / 2**20
    print(f"streamed {n} images ({size_mb:.0f} MB of JPEG shards, {decoded_mb:.0f} MB decoded) in {secs:.1f} s: "
          f"{n / secs:.0f} images/s; peak RSS main {rss:.0f} MB, largest worker {child:.0f} MB "
          f"(buffer {args.buffer} samples, torch {torch.__version__}, {args.workers} workers)")


if __name__ == "__main__":
    main()
