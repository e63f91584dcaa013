"""Data sources (IDX, CIFAR pickles, ImageFolder dir/zip), the prepared format, bad input."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from csl.data import DataConfig, load, read, write
from csl.data import fashion_mnist
from csl.data.idx import read_idx
from csl.errors import DataError
from conftest import digits_images, write_idx


def test_idx_round_trip(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for compress in (True, False):
        p = write_idx(tmp_path / f"a{compress}", arr, compress)
        np.testing.assert_array_equal(read_idx(p), arr)


def test_idx_truncated_names_the_file(tmp_path: Path) -> None:
    p = write_idx(tmp_path / "x", np.zeros((10, 4, 4), np.uint8), compress=False)
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(DataError, match=rf"{p}.*truncated"):
        read_idx(p)


def test_idx_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    p = write_idx(tmp_path / "x", np.zeros((10, 4, 4), np.uint8))
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    with pytest.raises(DataError, match=rf"cannot read {p}.*corrupt or truncated"):
        read_idx(p)


def test_idx_bad_magic(tmp_path: Path) -> None:
    p = tmp_path / "junk"
    p.write_bytes(b"hello world, not idx")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(p)


def test_fashion_mnist_from_directory(idx_dir: Path, tmp_path: Path) -> None:
    raw = read(DataConfig(source=str(idx_dir)), tmp_path, seed=0)
    assert raw.train.images.shape == (600, 1, 16, 16) and raw.test.images.shape == (200, 1, 16, 16)
    assert raw.classes == fashion_mnist.CLASSES


def test_missing_dataset_names_the_ways_to_provide_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    with pytest.raises(DataError) as e:
        read(DataConfig(), tmp_path, seed=0)
    msg = str(e.value)
    assert "Fashion-MNIST was not found" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "CSL_FASHION_MNIST_DIR" in msg and "data.download: true" in msg
    assert str(tmp_path / "no-debian") in msg


def test_env_var_location(tmp_path: Path, idx_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(idx_dir))
    assert read(DataConfig(), tmp_path, seed=0).source == str(idx_dir)


def test_download_failure_is_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)

    def offline(*a: object, **k: object) -> None:
        raise OSError("network is unreachable")

    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(DataError, match="downloading Fashion-MNIST failed.*unreachable"):
        read(DataConfig(download=True), tmp_path, seed=0)


def _imagefolder_zip(path: Path, splits: bool = True, corrupt: str | None = None) -> Path:
    imgs, labels = digits_images(120)
    with zipfile.ZipFile(path, "w") as z:
        for i, (img, lab) in enumerate(zip(imgs, labels)):
            buf = io.BytesIO()
            Image.fromarray(np.stack([img] * 3, -1)).save(buf, format="PNG")
            split = ("test/" if i % 4 == 0 else "train/") if splits else ""
            z.writestr(f"top/{split}c{lab}/{i:04d}.png", buf.getvalue())
        if corrupt:
            z.writestr(f"top/{'train/' if splits else ''}c1/{corrupt}", b"not an image")
    return path


def test_imagefolder_zip_with_splits(tmp_path: Path) -> None:
    z = _imagefolder_zip(tmp_path / "set.zip")
    raw = read(DataConfig(dataset="imagefolder", source=str(z)), tmp_path, seed=0)
    assert raw.train.images.shape == (90, 3, 16, 16) and raw.test.images.shape == (30, 3, 16, 16)
    assert raw.classes == [f"c{k}" for k in range(10)]


def test_imagefolder_directory_without_splits_is_stratified(tmp_path: Path) -> None:
    z = _imagefolder_zip(tmp_path / "set.zip", splits=False)
    d = tmp_path / "dir"
    zipfile.ZipFile(z).extractall(d)
    raw = read(DataConfig(dataset="imagefolder", source=str(d), test_fraction=0.25), tmp_path, seed=0)
    assert len(raw.train.labels) + len(raw.test.labels) == 120
    assert 25 <= len(raw.test.labels) <= 35
    assert set(raw.test.labels.tolist()) == set(range(10))


def test_corrupt_image_is_named(tmp_path: Path) -> None:
    z = _imagefolder_zip(tmp_path / "set.zip", corrupt="broken.png")
    with pytest.raises(DataError, match="cannot decode image top/train/c1/broken.png"):
        read(DataConfig(dataset="imagefolder", source=str(z)), tmp_path, seed=0)


def test_not_a_zip(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK-not-really")
    with pytest.raises(DataError, match="not a readable zip"):
        read(DataConfig(dataset="imagefolder", source=str(bad)), tmp_path, seed=0)


def test_cifar_pickles(tmp_path: Path) -> None:
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, 20))}
        (d / name).write_bytes(pickle.dumps(batch))
    (d / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"k{i}" for i in range(10)]}))
    raw = read(DataConfig(dataset="cifar10", source=str(tmp_path)), tmp_path, seed=0)
    assert raw.train.images.shape == (100, 3, 32, 32) and raw.test.images.shape == (20, 3, 32, 32)
    (d / "data_batch_3").write_bytes(b"\x80\x04truncated")
    with pytest.raises(DataError, match="data_batch_3"):
        read(DataConfig(dataset="cifar10", source=str(tmp_path)), tmp_path, seed=0)


def test_cifar_missing_lists_sources(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="(?s)CIFAR-10 not found.*cifar-10-batches-py.*ImageFolder"):
        read(DataConfig(dataset="cifar10"), tmp_path, seed=0)


def test_prepared_round_trip_and_meta(idx_dir: Path, tmp_path: Path) -> None:
    raw = read(DataConfig(source=str(idx_dir)), tmp_path, seed=0)
    meta = write(raw, tmp_path / "prep")
    assert sorted(p.name for p in (tmp_path / "prep").iterdir()) == sorted(
        ["meta.json", "test_images.npy", "test_labels.npy", "train_images.npy", "train_labels.npy"])
    x = raw.train.images / 255.0
    assert meta["mean"][0] == pytest.approx(x.mean(), abs=1e-9)
    assert meta["std"][0] == pytest.approx(x.std(), abs=1e-6)
    assert meta["shape"] == [1, 16, 16] and len(meta["content_hash"]) == 64
    p = load(tmp_path / "prep")
    np.testing.assert_array_equal(p.train.images, raw.train.images)
    # the same data gives the same hash; other data another
    assert write(raw, tmp_path / "prep2")["content_hash"] == meta["content_hash"]
    raw.train.labels[0] = (raw.train.labels[0] + 1) % 10
    assert write(raw, tmp_path / "prep3")["content_hash"] != meta["content_hash"]


def test_subset_is_stratified_and_seeded(idx_dir: Path, tmp_path: Path) -> None:
    a = read(DataConfig(source=str(idx_dir), max_train=100, max_test=50), tmp_path, seed=0)
    b = read(DataConfig(source=str(idx_dir), max_train=100, max_test=50), tmp_path, seed=0)
    assert len(a.train.labels) == 100 and len(a.test.labels) <= 50
    np.testing.assert_array_equal(a.train.labels, b.train.labels)
    counts = np.bincount(a.train.labels, minlength=10)
    assert counts.min() >= 8


def test_prepared_load_detects_corruption(idx_dir: Path, tmp_path: Path) -> None:
    write(read(DataConfig(source=str(idx_dir)), tmp_path, seed=0), tmp_path / "prep")
    with pytest.raises(DataError, match="no prepared dataset"):
        load(tmp_path / "missing")
    f = tmp_path / "prep" / "train_images.npy"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(DataError, match="train_images.npy is missing or corrupt"):
        load(tmp_path / "prep")


def test_failed_prepare_leaves_previous_output_intact(idx_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    raw = read(DataConfig(source=str(idx_dir)), tmp_path, seed=0)
    write(raw, tmp_path / "prep")
    before = json.loads((tmp_path / "prep" / "meta.json").read_text())

    def boom(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        write(raw, tmp_path / "prep")
    assert json.loads((tmp_path / "prep" / "meta.json").read_text()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".prep")] == []
