"""``csl shard`` (WebDataset shards of an ImageFolder) and ``csl fetch-data`` (the DVC-versioned
prepared dataset of a git revision)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

COMMANDS = ("shard", "fetch-data")


def add_parsers(sub: Any) -> None:
    sh = sub.add_parser("shard", help="write an ImageFolder of JPEGs, or a collection of images without labels, "
                                     "as WebDataset tar shards, locally or to s3:// (the streaming path for datasets "
                                     "larger than memory)")
    sh.add_argument("--source", required=True, help="ImageFolder directory or zip; with --labels none|folders a "
                                                    "directory, zip or s3:// prefix of images at any depth")
    sh.add_argument("--out", required=True, help="output directory or s3://BUCKET/PREFIX")
    sh.add_argument("--labels", choices=["imagefolder", "none", "folders"], default="imagefolder",
                    help="imagefolder (default): [split/]<class>/<image>.jpg, one --split; none: a collection "
                         "without labels (folders are never labels), folders: its first folder is the class. "
                         "Both write OUT/train, OUT/test (a held-out split by path hash) and OUT/meta.json, "
                         "every image at its own size (data.dataset: images's rules)")
    sh.add_argument("--split", default="train")
    sh.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default: %(default)s)")
    sh.add_argument("--image-size", type=int, default=None, help="with --labels none|folders: the training and "
                                                                 "evaluation side (data.image_size)")
    sh.add_argument("--test-fraction", type=float, default=0.2)
    sh.add_argument("--max-side", type=int, default=None, help="reduce the shorter side to this (default: native)")
    sh.add_argument("--color", choices=["auto", "rgb", "gray"], default="auto")
    sh.add_argument("--on-corrupt", choices=["error", "skip"], default="error")
    fd = sub.add_parser("fetch-data", help="fetch the DVC-versioned prepared dataset of a git revision from its "
                                          "DVC remote (verified; refuses unversioned data)")
    fd.add_argument("--repo", required=True, help="git repository URL or local clone holding dvc.lock")
    fd.add_argument("--rev", default="HEAD", help="git revision (default: %(default)s)")
    fd.add_argument("--path", default="data/prepared", help="DVC-tracked path in the repository")
    fd.add_argument("--no-track", action="store_true", help="log no MLflow run (the pods of a job: the pipeline's "
                                                           "prepare step logged it)")


def run(args: argparse.Namespace, project: Path, params_path: Path) -> int:
    if args.command == "shard" and args.labels != "imagefolder":
        return _shard_collection(args)
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


def _shard_collection(args: argparse.Namespace) -> int:
    """``csl shard --labels none|folders``: the prepared shards of ``data.dataset: images`` (train,
    test, meta.json), written to a directory or uploaded to an S3 prefix, for ``data.dataset: shards``."""
    import tempfile

    from csl.data.config import DataConfig
    from csl.data.prepare_images import prepare_images

    source = args.source if args.source.startswith("s3://") else str(Path(args.source).resolve())
    cfg = DataConfig(dataset="images", source=source, image_size=args.image_size, labels=args.labels,
                     test_fraction=args.test_fraction, max_side=args.max_side, color=args.color,
                     on_corrupt=args.on_corrupt, shard_size=args.shard_size)
    cfg.validate("csl shard")
    with tempfile.TemporaryDirectory() as d:
        local = Path(d) / "shards" if args.out.startswith("s3://") else Path(args.out)
        meta = prepare_images(cfg, source, local, Path(source.rstrip("/")).stem or "images")
        if args.out.startswith("s3://"):
            from csl.io import s3

            s3.upload_dir(local, args.out)
    print(f"wrote {meta['num_train']} train / {meta['num_test']} held-out images "
          f"({'no labels' if not meta['labelled'] else str(len(meta['classes'])) + ' classes'}) to {args.out}; "
          f"{meta['skipped']} skipped. Use data.dataset: shards, data.source: {args.out}"
          f"{', data.labels: none' if not meta['labelled'] else ''}")
    return 0
