"""The streaming path (``csl.data.shards``): an ImageFolder of JPEGs written as WebDataset tar
shards (the JPEG bytes unchanged), streamed back through a bounded shuffle buffer, locally and
from the loopback S3 server: every image exactly once per epoch, decoded equal to PIL, an order
set by (seed, epoch), shards split across DataLoader workers and ranks, memory bounded by the
buffer whatever the dataset size, and a corrupt shard refused."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from conftest import digits_images
from csl.data import shards
from csl.errors import DataError

N = 96


def jpeg_zip(tmp: Path, n: int = N) -> tuple[Path, np.ndarray, np.ndarray]:
    """An ImageFolder zip of n RGB 16x16 JPEGs; returns (zip, PIL-decoded images, labels)."""
    imgs, labels = digits_images(n)
    path = tmp / "folder.zip"
    decoded = []
    with zipfile.ZipFile(path, "w") as z:
        for i, (img, y) in enumerate(zip(imgs, labels)):
            rgb = np.stack([img, 255 - img, img // 2], axis=-1)
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
            z.writestr(f"train/c{y}/{i:04d}.jpg", buf.getvalue())
            decoded.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).transpose(2, 0, 1))
    return path, np.stack(decoded), labels.astype(np.int64)


def epoch(stream: shards.ShardStream, workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    if workers:
        batches = list(DataLoader(stream, batch_size=None, num_workers=workers))
    else:
        batches = list(stream)
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def key(images: torch.Tensor | np.ndarray) -> list[bytes]:
    return sorted(np.asarray(x).tobytes() for x in images)


def test_round_trip_every_image_once_equal_to_pil_in_a_seeded_order(tmp_path: Path) -> None:
    src, decoded, labels = jpeg_zip(tmp_path)
    classes, samples = shards.imagefolder_samples(src)
    index = shards.write_shards(samples, classes, tmp_path / "shards", shard_size=10)
    assert index["num_samples"] == N and len(index["shards"]) == 10
    with zipfile.ZipFile(src) as z:  # the JPEG bytes are stored unchanged
        first = z.read(sorted(n for n in z.namelist() if n.endswith(".jpg"))[0])
    with tarfile.open(tmp_path / "shards" / "shard-000000.tar") as t:
        assert first in {t.extractfile(m).read() for m in t.getmembers() if m.name.endswith(".jpg")}  # type: ignore[union-attr]

    stream = shards.ShardStream(str(tmp_path / "shards"), batch_size=8, size=16, channels=3, buffer=12, seed=3)
    x, y = epoch(stream)
    assert x.dtype == torch.uint8 and x.shape == (N, 3, 16, 16)
    # every image exactly once, and torchvision's decode equals PIL's
    assert key(x) == key(decoded)
    pairs = {np.asarray(img).tobytes(): int(lab) for img, lab in zip(decoded, labels)}
    assert all(pairs[np.asarray(img).tobytes()] == int(lab) for img, lab in zip(x, y))
    assert stream.max_buffered <= 12  # memory: the buffer, not the dataset
    # order: the same for the same (seed, epoch), another one next epoch
    x_again, _ = epoch(shards.ShardStream(str(tmp_path / "shards"), 8, 16, 3, buffer=12, seed=3))
    assert torch.equal(x, x_again)
    stream.set_epoch(1)
    x1, _ = epoch(stream)
    assert not torch.equal(x, x1) and key(x1) == key(x)


def test_workers_and_ranks_split_the_shards(tmp_path: Path) -> None:
    src, decoded, _ = jpeg_zip(tmp_path)
    classes, samples = shards.imagefolder_samples(src)
    shards.write_shards(samples, classes, tmp_path / "s", shard_size=8)  # 12 shards of 8
    root = str(tmp_path / "s")
    x, _ = epoch(shards.ShardStream(root, 8, 16, 3, buffer=16), workers=2)
    assert key(x) == key(decoded)
    parts = [epoch(shards.ShardStream(root, 8, 16, 3, buffer=16, rank=r, world_size=2))[0] for r in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == N // 2
    assert key(torch.cat(parts)) == key(decoded)


def test_memory_does_not_grow_with_the_dataset(tmp_path: Path) -> None:
    src, _, _ = jpeg_zip(tmp_path)
    classes, samples = shards.imagefolder_samples(src)
    many = (s for _ in range(20) for s in shards.imagefolder_samples(src)[1])  # 20 x the images
    shards.write_shards(many, classes, tmp_path / "big", shard_size=100)
    stream = shards.ShardStream(str(tmp_path / "big"), 32, 16, 3, buffer=64)
    n = sum(len(b[1]) for b in stream)
    assert n == 20 * N and stream.max_buffered == 64


def test_stream_from_s3(tmp_path: Path, s3) -> None:  # type: ignore[no-untyped-def]
    from csl.cli import main

    _, bucket, _ = s3
    src, decoded, _ = jpeg_zip(tmp_path)
    assert main(["shard", "--source", str(src), "--out", f"s3://{bucket}/shards/train", "--shard-size", "16"]) == 0
    x, _ = epoch(shards.ShardStream(f"s3://{bucket}/shards/train", 8, 16, 3, buffer=32))
    assert key(x) == key(decoded)


def test_corrupt_shards_and_non_jpeg_sources_are_refused(tmp_path: Path) -> None:
    src, _, _ = jpeg_zip(tmp_path)
    classes, samples = shards.imagefolder_samples(src)
    shards.write_shards(samples, classes, tmp_path / "s", shard_size=50)
    shard = tmp_path / "s" / "shard-000000.tar"
    shard.write_bytes(shard.read_bytes()[:5000] + b"\0garbage" * 100)
    with pytest.raises(DataError, match="corrupt"):
        list(shards.ShardStream(str(tmp_path / "s"), 8, 16, 3))
    png = tmp_path / "png.zip"
    with zipfile.ZipFile(png, "w") as z:
        buf = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buf, format="PNG")
        z.writestr("a/0.png", buf.getvalue())
        z.writestr("b/0.png", buf.getvalue())
    with pytest.raises(DataError, match="is not a JPEG"):
        shards.imagefolder_samples(png)


def test_the_pipeline_stages_stream_a_sharded_dataset(tmp_path: Path) -> None:
    """prepare (metadata only), pretrain (images streamed from the shards through DataLoader
    workers) and linear-eval (features of every train and test image, streamed) on a dataset
    that is never loaded into memory; the statistics equal those of the in-memory path."""
    import json
    import subprocess

    import yaml

    from conftest import BIN, csl_env, tiny_method
    from csl.data import load

    src, decoded, _ = jpeg_zip(tmp_path, 160)
    test_zip = tmp_path / "test.zip"  # a test split: every 5th image (all classes) under test/
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(test_zip, "w") as t:
        names = sorted(n for n in z.namelist() if n.endswith(".jpg"))
        for n in names[::5]:
            t.writestr(n.replace("train/", "test/", 1), z.read(n))
    from csl.cli import main

    assert main(["shard", "--source", str(src), "--out", str(tmp_path / "sh" / "train"), "--shard-size", "40"]) == 0
    assert main(["shard", "--source", str(test_zip), "--split", "test", "--out", str(tmp_path / "sh" / "test")]) == 0
    proj = tmp_path / "proj"
    proj.mkdir()
    method = tiny_method(epochs=2, batch_size=32, precision="32-true", channels_last=False)
    params = {"data": {"dataset": "shards", "source": str(tmp_path / "sh"), "image_size": 16},
              "variants": ["s"], "methods": {"s": method},
              "eval": {"batch_size": 64, "linear": {"epochs": 5, "batch_size": 64, "lr": 1e-2},
                       "knn": {"k": 5, "temperature": 0.1}, "map": {"method": "pca", "points": 20}},
              "tracking": {"experiment": "shards"}}
    (proj / "params.yaml").write_text(yaml.safe_dump(params))
    env = csl_env(tmp_path)
    for stage in (["prepare"], ["pretrain", "--variant", "s"], ["features", "--variant", "s"],
                  ["linear-eval", "--variant", "s"]):
        out = subprocess.run([str(BIN / "csl"), *stage], cwd=proj, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(p.name for p in (proj / "data" / "prepared").iterdir()) == ["meta.json"]  # no arrays
    data = load(proj / "data" / "prepared")
    assert data.streamed and data.meta["num_train"] == 160 and data.meta["num_test"] == 32
    from csl.data.prepared import channel_stats

    mean, std = channel_stats(decoded)  # the in-memory path's statistics of the same images
    assert np.allclose(data.meta["mean"], mean, atol=1e-6) and np.allclose(data.meta["std"], std, atol=1e-6)
    hist = json.loads((proj / "runs/s/pretrain/history.json").read_text())
    assert [r["epoch"] for r in hist] == [0, 1] and all(np.isfinite(r["loss"]) for r in hist)
    metrics = json.loads((proj / "runs/s/eval/metrics.json").read_text())
    assert 0.0 <= metrics["linear_top1"] <= 1.0
    emap = np.load(proj / "runs/s/eval/embedding_map.npz")
    assert len(emap["labels"]) == 20  # sampled from the 32 streamed test images


def test_streamed_batches_carry_labels_for_a_method_that_needs_them(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """SupCon on shards: every streamed image arrives with its own label; a method that needs sample
    indices or whole-dataset features is refused on shards before training, naming the fix."""
    import yaml

    from conftest import tiny_method
    from csl.errors import ConfigError
    from csl.methods.base import Batch
    from csl.methods.config import parse_method
    from csl.methods.supcon import SupCon
    from csl.params import load_params
    from csl.stages.layout import Layout
    from csl.stages.prepare import prepare
    from csl.train.fit import fit
    from csl.cli import main
    from csl.data import load
    from test_methods import VARIANTS

    src, decoded, labels = jpeg_zip(tmp_path, 96)
    assert main(["shard", "--source", str(src), "--out", str(tmp_path / "sh" / "train"), "--shard-size", "40"]) == 0
    test_zip = tmp_path / "test.zip"  # a test split: the same images under test/
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(test_zip, "w") as t:
        for n in z.namelist():
            t.writestr(n.replace("train/", "test/", 1), z.read(n))
    assert main(["shard", "--source", str(test_zip), "--split", "test", "--out", str(tmp_path / "sh" / "test")]) == 0
    label_of = {img.tobytes(): int(y) for img, y in zip(decoded, labels)}
    method = {**tiny_method(batch_size=32, precision="32-true", channels_last=False), **VARIANTS["supcon"]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "data": {"dataset": "shards", "source": str(tmp_path / "sh"), "image_size": 16},
        "variants": ["s"], "methods": {"s": method}}))
    params = load_params(tmp_path / "params.yaml")
    prepare(params, tmp_path)
    data = load(Layout(tmp_path, params).prepared)
    assert data.streamed
    seen: list[Batch] = []
    original = SupCon.training_loss
    monkeypatch.setattr(SupCon, "training_loss", lambda self, b, g: seen.append(b) or original(self, b, g))
    monkeypatch.setattr("csl.train.data.torch.cuda.is_available", lambda: False)
    fit(params.variant("s").config, data, tmp_path / "ckpt")
    assert seen  # full batches of each worker's shards
    for b in seen:
        assert b.labels is not None and b.indices is None
        assert [label_of[x.numpy().tobytes()] for x in b.images] == b.labels.tolist()
    pcl = parse_method({**tiny_method(batch_size=32), **VARIANTS["pcl"],
                        "method": {**VARIANTS["pcl"]["method"], "queue_size": 32}}, "m")
    with pytest.raises(ConfigError, match="needs sample indices or whole-dataset features.*data.dataset other than"):
        fit(pcl, data, tmp_path / "ckpt-pcl")
