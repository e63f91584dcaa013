"""Unlabeled image collections (``data.dataset: images``): sources, formats, bad input, native-size
storage and training crops cut from the stored image."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from csl.data.collection import held_out, list_collection
from csl.data.config import DataConfig
from csl.data.image_file import decode
from csl.data.prepare_images import prepare_images
from csl.data.prepared import load
from csl.data.shards import ShardStream, iter_samples
from csl.errors import DataError
from image_collection import bomb_png, encoded, gray16_png, picture, write_collection


def prep(source: Path | str, out: Path, **kw: object) -> dict:
    cfg = DataConfig(dataset="images", source=str(source), image_size=32, **kw)  # type: ignore[arg-type]
    cfg.validate("data")
    return prepare_images(cfg, str(source), out, "photos")


def stored(prepared: Path) -> dict[str, np.ndarray]:
    """Every stored image of both splits, decoded with PIL: relative key -> uint8 (H, W[, C])."""
    out = {}
    for split in ("train", "test"):
        for tar in sorted((prepared / split).glob("shard-*.tar")):
            for key, data, label in iter_samples(str(tar)):
                out[f"{split}/{key}"] = np.asarray(Image.open(io.BytesIO(data)))
                assert label is None
    return out


def test_flat_directory_is_stored_at_native_size_without_labels(tmp_path: Path) -> None:
    files = write_collection(tmp_path / "photos", 60)
    meta = prep(tmp_path / "photos", tmp_path / "prepared")
    assert meta["classes"] == [] and meta["labelled"] is False
    assert meta["num_train"] + meta["num_test"] == 60 and meta["num_test"] > 0
    assert meta["ignored_files"] == 1  # README.txt
    assert meta["shape"] == [3, 32, 32] and meta["color"] == "rgb"
    # every image is kept at its own size: the multiset of stored sizes is that of the files
    sizes = sorted(a.shape[:2] for a in stored(tmp_path / "prepared").values())
    assert sizes == sorted(np.asarray(Image.open(f)).shape[:2] for f in files)
    # lossless formats are stored losslessly: each PNG/BMP/TIFF's pixels are found exactly
    originals = {np.asarray(Image.open(f).convert("RGB")).tobytes() for f in files if f.suffix != ".jpg"}
    kept = {a.tobytes() for a in stored(tmp_path / "prepared").values()}
    lossless = [f for f in files if f.suffix in (".png", ".bmp", ".tif")]
    assert all(np.asarray(Image.open(f).convert("RGB")).tobytes() in kept for f in lossless)
    assert originals  # and JPEGs keep their bytes
    assert meta["stored"]["jpeg_kept"] == sum(f.suffix == ".jpg" for f in files)
    # the exact per-channel mean over every training pixel
    assert all(0.0 < m < 1.0 for m in meta["mean"])


def test_nested_folders_are_never_labels_unless_asked(tmp_path: Path) -> None:
    write_collection(tmp_path / "photos", 40, nested=True)
    meta = prep(tmp_path / "photos", tmp_path / "a")
    assert meta["classes"] == [] and meta["labelled"] is False
    with pytest.raises(DataError, match="is in no folder"):  # README.txt is ignored; every image has a folder
        (tmp_path / "photos" / "loose.png").write_bytes(encoded(Image.new("RGB", (40, 40)), "PNG"))
        prep(tmp_path / "photos", tmp_path / "b", labels="folders")
    (tmp_path / "photos" / "loose.png").unlink()
    meta = prep(tmp_path / "photos", tmp_path / "c", labels="folders")
    assert meta["classes"] == ["2026-11", "2026-12"] and meta["labelled"] is True
    index = json.loads((tmp_path / "c" / "train" / "index.json").read_text())
    assert index["labelled"] is True and index["classes"] == ["2026-11", "2026-12"]


def test_zip_and_directory_give_the_same_dataset(tmp_path: Path) -> None:
    write_collection(tmp_path / "photos", 30, nested=True)
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as zf:
        for f in sorted((tmp_path / "photos").rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(tmp_path / "photos").as_posix())
    a = prep(tmp_path / "photos", tmp_path / "a")
    b = prep(tmp_path / "photos.zip", tmp_path / "b")
    assert a["content_hash"] == b["content_hash"] and a["num_train"] == b["num_train"]


def test_s3_prefix(tmp_path: Path, s3) -> None:  # type: ignore[no-untyped-def]
    import boto3

    endpoint, bucket, _ = s3
    client = boto3.client("s3", endpoint_url=endpoint)
    files = write_collection(tmp_path / "photos", 25, nested=True)
    for f in files:
        client.upload_file(str(f), bucket, f"cams/{f.relative_to(tmp_path / 'photos').as_posix()}")
    client.put_object(Bucket=bucket, Key="other/x.png", Body=encoded(Image.new("RGB", (40, 40)), "PNG"))
    meta = prep(f"s3://{bucket}/cams", tmp_path / "s3")
    local = prep(tmp_path / "photos", tmp_path / "local")
    assert meta["num_train"] + meta["num_test"] == 25
    assert meta["content_hash"] == local["content_hash"]  # the same relative paths and bytes
    with pytest.raises(DataError, match="holds no images"):
        prep(f"s3://{bucket}/nothing-here", tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_split_is_stable_when_the_collection_grows(tmp_path: Path) -> None:
    write_collection(tmp_path / "photos", 40)
    before = {it.path: held_out(it.path, 0.2) for it in list_collection(str(tmp_path / "photos")).items}
    write_collection(tmp_path / "photos" / "new", 40, seed=1)
    after = {it.path: held_out(it.path, 0.2) for it in list_collection(str(tmp_path / "photos")).items}
    assert len(after) == 80 and all(after[p] == v for p, v in before.items())
    assert 0 < sum(after.values()) < 80


def test_colour_mode_is_decided_from_the_whole_collection(tmp_path: Path) -> None:
    gray = tmp_path / "gray"
    gray.mkdir()
    for i in range(12):  # a grayscale collection whose first file (sorted) is... still gray
        Image.fromarray(picture(40, 30, i)[..., 0]).save(gray / f"{i:02d}.png")
    assert prep(gray, tmp_path / "g")["shape"][0] == 1
    # one RGB image anywhere (here: sorted last) makes the collection RGB
    Image.fromarray(picture(40, 30, 99)).save(gray / "zz.jpg")
    meta = prep(gray, tmp_path / "rgb")
    assert meta["shape"][0] == 3 and meta["color"] == "rgb" and meta["gray_files"] == 12
    assert prep(gray, tmp_path / "forced", color="gray")["shape"][0] == 1


def test_formats_are_normalised() -> None:
    # 16-bit PNG: scaled by 255/65535, not clipped at 255
    values = np.array([[0, 257, 32768, 65535] * 4] * 16, dtype=np.uint16)
    d = decode(gray16_png(values), None)
    assert np.asarray(d.image)[0, :4].tolist() == [0, 1, 128, 255] and d.image.mode == "L"
    # palette with transparency and RGBA: composited over white
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 10, 20))
    px = np.asarray(decode(encoded(rgba, "PNG"), None).image)
    assert px[0, 0].tolist() == [0, 0, 255] and px[0, 15].tolist() == [255, 255, 255]
    pal = rgba.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    assert decode(encoded(pal, "PNG"), None).image.mode == "RGB"
    # CMYK JPEG: converted to RGB and re-encoded losslessly (its bytes are not kept)
    cmyk = Image.fromarray(picture(40, 40, 3)).convert("CMYK")
    d = decode(encoded(cmyk, "JPEG"), None)
    assert d.image.mode == "RGB" and not d.kept_as_is
    # EXIF orientation 6 (rotate 90 clockwise to view): a 40x20 file is a 20x40 picture
    exif = Image.Exif()
    exif[0x0112] = 6
    d = decode(encoded(Image.fromarray(picture(40, 20, 1)), "JPEG", exif=exif), None)
    assert d.image.size == (20, 40) and not d.kept_as_is
    # a plain RGB JPEG keeps its bytes; max_side caps the shorter side, aspect kept
    plain = encoded(Image.fromarray(picture(80, 40, 2)), "JPEG")
    assert decode(plain, None).kept_as_is
    capped = decode(plain, None, max_side=20)
    assert capped.image.size == (40, 20) and not capped.kept_as_is


def _bad_collection(root: Path) -> dict[str, bytes]:
    png = encoded(Image.fromarray(picture(40, 40, 5)), "PNG")
    return {
        "corrupt.jpg": b"\xff\xd8\xff\xe0" + os.urandom(200),
        "notes.png": b"this is text with an image extension",
        "tiny.png": encoded(Image.new("RGB", (1, 1)), "PNG"),
        "truncated.png": png[: len(png) // 2],
        "bomb.png": bomb_png(),
    }


@pytest.mark.parametrize("name, message", [
    ("corrupt.jpg", "corrupt or truncated"),
    ("notes.png", "not an image PIL can read"),
    ("tiny.png", "is 1x1: a side is shorter than data.min_side"),
    ("truncated.png", "corrupt or truncated"),
    ("bomb.png", "decompression"),
])
def test_bad_files_name_the_file_and_the_fix(tmp_path: Path, name: str, message: str) -> None:
    root = tmp_path / "photos"
    write_collection(root, 20)
    (root / name).write_bytes(_bad_collection(root)[name])
    out = tmp_path / "prepared"
    with pytest.raises(DataError, match=message) as e:
        prep(root, out)
    assert str(root / name) in str(e.value) and "on_corrupt: skip" in str(e.value)
    assert not out.exists() and not list(tmp_path.glob(".prepared*"))  # nothing half-written


def test_unreadable_file_and_empty_collection(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    write_collection(root, 10)
    (root / "gone.jpg").symlink_to(tmp_path / "missing.jpg")  # listed, cannot be read (root reads any mode)
    with pytest.raises(DataError, match="gone.jpg cannot be read .No such file"):
        prep(root, tmp_path / "p")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    with pytest.raises(DataError, match="holds no images.*1 other file"):
        prep(tmp_path / "empty", tmp_path / "p")
    with pytest.raises(DataError, match="does not exist"):
        prep(tmp_path / "nowhere", tmp_path / "p")


def test_on_corrupt_skip_counts_and_names_the_skipped_files(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    write_collection(root, 20)
    bad = _bad_collection(root)
    for name, data in bad.items():
        (root / name).write_bytes(data)
    meta = prep(root, tmp_path / "p", on_corrupt="skip")
    assert meta["skipped"] == len(bad) and meta["num_train"] + meta["num_test"] == 20
    assert {s["file"] for s in meta["skipped_files"]} == set(bad)


def test_training_crops_come_from_the_stored_native_image(tmp_path: Path) -> None:
    """A crop of the training stream equals torchvision's resized crop of the original file at its
    own resolution, with the box the sample's generator draws (not a crop of a resized copy)."""
    from torchvision.transforms.v2.functional import resized_crop

    from csl.augment.native import CroppedViews, ViewCrop, crop_boxes, sample_generator

    root = tmp_path / "photos"
    files = write_collection(root, 24)
    for f in files:  # lossless files only, so the original's pixels are exactly what is stored
        if f.suffix == ".jpg":
            f.unlink()
    data = load_prepared(root, tmp_path / "prepared")
    crops = (ViewCrop(24, (0.08, 1.0), (3 / 4, 4 / 3)), ViewCrop(12, (0.05, 0.4), (3 / 4, 4 / 3)))
    stream = ShardStream(data.train.root, 4, 32, 3, seed=7, labels=False, crops=crops, epoch=2)
    batch = next(iter(stream))
    assert isinstance(batch, CroppedViews) and [tuple(v.shape) for v in batch.views] == [(4, 3, 24, 24),
                                                                                          (4, 3, 12, 12)]
    key, stored_bytes, _ = next(iter(stream.samples()))  # the stream's first sample
    original = {np.asarray(Image.open(f).convert("RGB")).tobytes(): f for f in files if f.exists()}
    pixels = np.asarray(Image.open(io.BytesIO(stored_bytes)).convert("RGB"))
    source = original[pixels.tobytes()]  # the original file of that sample
    img = torch.from_numpy(np.asarray(Image.open(source).convert("RGB"))).permute(2, 0, 1)
    assert img.shape[1:] != (32, 32)  # a native size, not the training size
    boxes = crop_boxes(img.shape[1], img.shape[2], crops, sample_generator(7, 2, key))
    for v, (c, (top, left, h, w)) in enumerate(zip(crops, boxes)):
        expected = resized_crop(img, top, left, h, w, [c.size, c.size], antialias=True)
        assert torch.equal(batch.views[v][0], expected)


def load_prepared(root: Path, out: Path):  # type: ignore[no-untyped-def]
    prep(root, out)
    return load(out)


def test_unlabeled_shards_refuse_a_request_for_labels(tmp_path: Path) -> None:
    data = load_prepared(write_collection(tmp_path / "photos", 12)[0].parent, tmp_path / "p")
    with pytest.raises(DataError, match="have no labels"):
        ShardStream(data.train.root, 4, 32, 3, labels=True)


def test_crop_box_has_torchvision_random_resized_crop_distribution() -> None:
    """The loader's pure-Python draw against ``RandomResizedCrop.get_params`` on the same image: the
    same mean area fraction, log aspect ratio and position (20,000 draws each), and the same
    centre-crop fallback where no try fits."""
    import math
    import random

    from torchvision.transforms import RandomResizedCrop

    from csl.augment.native import ViewCrop, crop_box

    c = ViewCrop(32, (0.08, 1.0), (3 / 4, 4 / 3))
    img = torch.zeros(3, 60, 90)
    g = random.Random(0)
    torch.manual_seed(0)
    ours = np.array([crop_box(60, 90, c, g) for _ in range(20000)], dtype=np.float64)
    ref = np.array([RandomResizedCrop.get_params(img, list(c.scale), list(c.ratio)) for _ in range(20000)],
                   dtype=np.float64)  # (top, left, h, w) both
    for a in (ours, ref):
        assert ((a[:, 0] + a[:, 2] <= 60) & (a[:, 1] + a[:, 3] <= 90)).all()
    stats = lambda a: (np.mean(a[:, 2] * a[:, 3] / 5400), np.mean(np.log(a[:, 3] / a[:, 2])),  # noqa: E731
                       np.mean(a[:, 0]), np.mean(a[:, 1]))
    for x, y in zip(stats(ours), stats(ref)):
        assert abs(x - y) < 0.02 * max(1.0, abs(y)), (stats(ours), stats(ref))
    tall = torch.zeros(3, 400, 10)  # no try fits a 3/4..4/3 box of 8-100% of the area: the fallback
    assert crop_box(400, 10, c, random.Random(1)) == RandomResizedCrop.get_params(tall, list(c.scale), list(c.ratio))
    assert math.isclose(crop_box(400, 10, c, random.Random(1))[2], round(10 / (3 / 4)))


def test_csl_shard_takes_an_unlabeled_collection(tmp_path: Path) -> None:
    """``csl shard --labels none`` writes what prepare writes for a collection; ``data.dataset: shards``
    with ``labels: none`` streams it (native-size images, the same content) and refuses labels."""
    import subprocess

    import yaml

    from conftest import BIN, csl_env, tiny_params
    from csl.data.shards import read_index

    write_collection(tmp_path / "photos", 40, nested=True)
    env = csl_env(tmp_path)
    out = subprocess.run([str(BIN / "csl"), "shard", "--source", str(tmp_path / "photos"), "--out",
                          str(tmp_path / "shards"), "--labels", "none", "--image-size", "32", "--shard-size", "10"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(no labels)" in out.stdout and "data.labels: none" in out.stdout
    index = read_index(str(tmp_path / "shards" / "train"))
    assert index["labelled"] is False and len(index["shards"]) == -(-index["num_samples"] // 10)
    direct = prep(tmp_path / "photos", tmp_path / "direct")
    project = tmp_path / "proj"
    project.mkdir()
    params = tiny_params(tmp_path)
    params["data"] = {"dataset": "shards", "source": str(tmp_path / "shards"), "image_size": 32, "labels": "none"}
    params["eval"]["champion_metric"] = "rankme"
    params["eval"]["run"]["probes"] = ["rankme"]
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    r = subprocess.run([str(BIN / "csl"), "prepare"], cwd=project, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    meta = json.loads((project / "data" / "prepared" / "meta.json").read_text())
    assert meta["native"] and meta["content_hash"] == direct["content_hash"] and meta["classes"] == []
    params["data"]["labels"] = None  # the shards have no labels: saying nothing is refused with the fix
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    r = subprocess.run([str(BIN / "csl"), "prepare"], cwd=project, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "the shards have no labels; set data.labels: none" in r.stderr


def test_a_grown_collection_is_prepared_again(tmp_path: Path) -> None:
    """csl run's check: the prepared meta.json goes when the folder holds other files than it was
    prepared from (DVC then prepares again), and stays when nothing changed."""
    import yaml

    from conftest import tiny_params
    from csl.params import load_params
    from csl.stages.prepare import check_source, prepare

    write_collection(tmp_path / "proj" / "photos", 30)
    params = tiny_params(tmp_path)
    params["data"] = {"dataset": "images", "source": "photos", "image_size": 32}
    params["eval"]["champion_metric"] = "rankme"
    params["eval"]["run"]["probes"] = ["rankme"]
    (tmp_path / "proj" / "params.yaml").write_text(yaml.safe_dump(params))
    p = load_params(tmp_path / "proj" / "params.yaml")
    meta = prepare(p, tmp_path / "proj")
    assert meta["source_fingerprint"] and check_source(p, tmp_path / "proj") == []
    write_collection(tmp_path / "proj" / "photos" / "2026-12-09", 5, seed=3)  # a new day's images
    lines = check_source(p, tmp_path / "proj")
    assert len(lines) == 1 and "changed since it was prepared" in lines[0]
    assert not (tmp_path / "proj" / "data" / "prepared" / "meta.json").exists()
    grown = prepare(p, tmp_path / "proj")
    assert grown["num_train"] + grown["num_test"] == 35 and grown["content_hash"] != meta["content_hash"]
    assert check_source(p, tmp_path / "proj") == []


def test_channel_statistics_are_those_of_every_training_pixel(tmp_path: Path) -> None:
    files = write_collection(tmp_path / "photos", 30)
    for f in files:
        if f.suffix == ".jpg":
            f.unlink()  # lossless files: the stored pixels are the files' pixels
    meta = prep(tmp_path / "photos", tmp_path / "p")
    train = [a for k, a in stored(tmp_path / "p").items() if k.startswith("train/")]
    pixels = np.concatenate([a.reshape(-1, 3) for a in train]).astype(np.float64) / 255.0
    assert len(train) == meta["num_train"]
    np.testing.assert_allclose(meta["mean"], pixels.mean(0), rtol=1e-12)
    np.testing.assert_allclose(meta["std"], pixels.std(0), rtol=1e-9)
