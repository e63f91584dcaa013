"""``csl embed MODEL INPUT -o OUT``: embeddings of a folder, zip or shard set of images."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

COMMANDS = ("embed",)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "embed", help="embed images with a registered encoder (models:/NAME@champion) or an encoder.pt",
        description="Embed every image of INPUT (a directory or .zip of images, or a shard directory with "
                    "index.json, local or s3://) with MODEL. Writes OUT.parquet (path, embedding) or, for any "
                    "other OUT, a directory with embeddings.npy, paths.txt and embed.json. Interrupted runs "
                    "resume from their last finished chunk when rerun with the same arguments.")
    p.add_argument("model", help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN/encoder, or a path to encoder.pt")
    p.add_argument("input", help="directory, .zip, or shard directory (index.json)")
    p.add_argument("-o", "--out", required=True, help="OUT.parquet, or a directory for embeddings.npy + paths.txt")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--chunk", type=int, default=8192, help="images per resumable chunk (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto (CUDA when visible), cpu, cuda, cuda:1, ...")
    p.add_argument("--adapt", action="store_true",
                   help="convert images of another channel count or size to the encoder's input (BT.601 luma or "
                        "grey replication, bilinear resize); without it such images are refused")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace, project: Path, params_path: Path) -> int:
    from csl.embed.load import is_model_uri
    from csl.embed.run import embed

    if is_model_uri(args.model) or not Path(args.model).exists():
        from csl import tracking

        tracking.use_store(project)
    manifest = embed(args.model, args.input, Path(args.out), batch_size=args.batch_size, device=args.device,
                     adapt=args.adapt, chunk=args.chunk, progress=not args.no_progress)
    print(json.dumps(manifest, indent=2, sort_keys=True))
    print(f"wrote {manifest['count']} embeddings of dimension {manifest['dim']} to {args.out} "
          f"({manifest['images_per_s']} images/s on {manifest['device']})")
    return 0
