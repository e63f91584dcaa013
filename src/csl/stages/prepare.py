"""``csl prepare``: read the configured dataset source and write the prepared dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from csl import data as csl_data
from csl.config.strict import to_dict
from csl.params import Params
from csl.stages.layout import Layout


def prepare(params: Params, project: Path) -> dict[str, Any]:
    """Pure stage: source -> ``data/prepared`` (written atomically). Returns the metadata."""
    cfg = params.data
    if cfg.dataset == "shards":  # larger than memory: only the metadata; every stage streams the shards
        from csl.data.prepared import write_shards_meta

        source = cfg.source if cfg.source.startswith("s3://") else str((project / cfg.source).resolve())
        return write_shards_meta(Path(source).name or "shards", source, int(cfg.image_size or 0),
                                 Layout(project, params).prepared, labels=cfg.labels)
    if cfg.dataset == "images":  # a collection without labels (or labels: folders), kept at native size
        from csl.data.prepare_images import prepare_images

        name = Path(cfg.source.rstrip("/")).stem or "images"
        return prepare_images(cfg, source_of(params, project), Layout(project, params).prepared, name)
    raw = csl_data.read(cfg, project, seed=0)
    return csl_data.write(raw, Layout(project, params).prepared)


def source_of(params: Params, project: Path) -> str:
    """``data.source`` as prepare reads it: an ``s3://`` prefix, or a path resolved in the project."""
    src = params.data.source
    return src if src.startswith("s3://") else str((project / src).resolve())


def check_source(params: Params, project: Path) -> list[str]:
    """Remove the prepared ``meta.json`` when the image collection (``data.dataset: images``) no longer
    holds what it was prepared from (files added, changed or removed; objects under the prefix), so
    that DVC prepares it again: a folder or bucket outside DVC's outputs is checked, never assumed."""
    from csl.data.collection import fingerprint

    meta_file = Layout(project, params).prepared / "meta.json"
    if params.data.dataset != "images" or not meta_file.is_file():
        return []
    import json

    meta = json.loads(meta_file.read_text())
    source = source_of(params, project)
    if meta.get("source") != source or "source_fingerprint" not in meta:
        return []  # prepared from another source or kind: the data params changed, DVC reruns prepare anyway
    if meta["source_fingerprint"] == fingerprint(source):
        return []
    meta_file.unlink()
    return [f"prepare: {params.data.source} changed since it was prepared (files added, changed or removed); "
            "preparing it again"]


def main(params: Params, project: Path) -> None:
    from csl import tracking

    with tracking.stage_run(project, params.tracking.experiment, "prepare") as rec:
        rec.params({"data": to_dict(params.data)})
        meta = prepare(params, project)
        rec.metrics({"num_train": meta["num_train"], "num_test": meta["num_test"],
                     **{k: meta[k] for k in ("skipped", "ignored_files") if k in meta}})
        rec.tags({"csl.data.content_hash": meta["content_hash"], "csl.data.name": meta["name"],
                  "csl.data.labelled": str(bool(meta.get("labelled", len(meta["classes"]) >= 2))).lower()})
    print(f"prepared {meta['name']} from {meta['source']}: {meta['num_train']} train / {meta['num_test']} test, "
          f"shape {meta['shape']} -> {Layout(project, params).prepared}")
    if meta.get("native"):
        side = meta["shorter_side"]
        print(f"  {'no labels' if not meta['labelled'] else str(len(meta['classes'])) + ' classes (folders)'}, "
              f"colour {meta['color']}, shorter side {side['min']}-{side['max']} px (median {side['median']}), "
              f"stored at native size ({meta['stored']['jpeg_kept']} JPEG as is, {meta['stored']['png']} PNG); "
              f"{meta['skipped']} skipped, {meta['ignored_files']} non-image file(s) ignored")


def fetch_main(params: Params, project: Path, repo: str, rev: str, path: str, track: bool = True) -> None:
    """``csl fetch-data``: the pipeline's prepare stage when the data is versioned elsewhere:
    the DVC-versioned ``path`` of ``repo`` at ``rev``, fetched from its DVC remote and verified."""
    import contextlib

    from csl import tracking
    from csl.tracking import dvc_data as versioned

    run = tracking.stage_run(project, params.tracking.experiment, "prepare") if track else contextlib.nullcontext()
    with run as rec:
        o = versioned.fetch(repo, rev, path, project / path)
        meta = csl_data.read_meta(project / path)
        if rec is not None:
            rec.params({"data": {"repo": repo, "rev": rev, "path": path}})
            rec.metrics({"num_train": meta["num_train"], "num_test": meta["num_test"]})
            rec.tags({"csl.data.content_hash": meta["content_hash"], "csl.data.name": meta["name"],
                      "csl.data.dvc_md5": o.md5, "csl.data.remote": o.remote, "csl.data.repo": repo,
                      "csl.data.rev": o.rev})
    print(f"fetched {path} (DVC md5 {o.md5}) of {repo}@{o.rev[:12]} from {o.remote}: {meta['name']}, "
          f"{meta['num_train']} train / {meta['num_test']} test -> {project / path}")
