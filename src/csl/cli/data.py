"""``csl shard`` (WebDataset shards of an ImageFolder) and ``csl fetch-data`` (the DVC-versioned
prepared dataset of a git revision)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

COMMANDS = ("shard", "fetch-data")


def add_parsers(sub: Any) -> None:
    sh = sub.add_parser("shard", help="write an ImageFolder (dir or zip) of JPEGs as WebDataset tar shards, "
                                     "locally or to s3:// (the streaming path for datasets larger than memory)")
    sh.add_argument("--source", required=True, help="ImageFolder directory or zip")
    sh.add_argument("--out", required=True, help="output directory or s3://BUCKET/PREFIX")
    sh.add_argument("--split", default="train")
    sh.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default: %(default)s)")
    fd = sub.add_parser("fetch-data", help="fetch the DVC-versioned prepared dataset of a git revision from its "
                                          "DVC remote (verified; refuses unversioned data)")
    fd.add_argument("--repo", required=True, help="git repository URL or local clone holding dvc.lock")
    fd.add_argument("--rev", default="HEAD", help="git revision (default: %(default)s)")
    fd.add_argument("--path", default="data/prepared", help="DVC-tracked path in the repository")
    fd.add_argument("--no-track", action="store_true", help="log no MLflow run (the pods of a job: the pipeline's "
                                                           "prepare step logged it)")


def run(args: argparse.Namespace, project: Path, params_path: Path) -> int:
    if args.command == "shard":
        import tempfile

        from csl.data import shards

        classes, samples = shards.imagefolder_samples(Path(args.source), args.split)
        with tempfile.TemporaryDirectory() as d:
            local = Path(d) / "shards" if args.out.startswith("s3://") else Path(args.out)
            index = shards.write_shards(samples, classes, local, args.shard_size, args.split)
            if args.out.startswith("s3://"):
                from csl.io import s3

                s3.upload_dir(local, args.out)
        print(f"wrote {index['num_samples']} {args.split} images in {len(index['shards'])} shards to {args.out}")
        return 0
    from csl.params import load_params
    from csl.stages import prepare

    prepare.fetch_main(load_params(params_path), project, args.repo, args.rev, args.path, track=not args.no_track)
    return 0
