"""``csl embed`` and ``csl.load_encoder``: a directory, a zip and shards of images give the same
embeddings as the pipeline's feature extraction of the same images, named by path; an interrupted
run resumes from its finished chunks and ends with the one-shot result; bad input (wrong channels
or size, corrupt image, missing input, a model that is not a csl encoder) is refused with the reason."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from csl.encoders.saved import ENCODER_FORMAT, load_feature_extractor
from csl.errors import CslError, DataError
from conftest import BIN, csl_env, digits_images

MEAN, STD = [0.3], [0.35]


def write_encoder(path: Path, seed: int = 0) -> Path:
    """An encoder.pt as csl pretrain writes it (a seeded small CNN; no training needed here)."""
    from csl.encoders import ENCODERS
    from csl.registry import build, parse_spec

    spec = parse_spec(ENCODERS, "encoder", {"name": "small_cnn", "widths": [8, 16]}, "encoder")
    torch.manual_seed(seed)
    enc = build(ENCODERS, spec, in_channels=1)
    torch.save({"format": ENCODER_FORMAT, "variant": "t", "method": "simclr", "encoder": spec.as_dict(),
                "in_channels": 1, "image_size": 16, "mean": MEAN, "std": STD, "classes": ["a", "b"],
                "dataset": "digits", "dataset_content_hash": "x", "state_dict": enc.state_dict(), "head": None}, path)
    return path


def write_folder(root: Path, n: int = 40, rgb_size: int | None = None, fmt: str = "PNG") -> list[str]:
    """train/<class>/<i>.png and test/<class>/<i>.png of digits (16x16 grey); returns the relative paths."""
    imgs, labels = digits_images(n)
    names = []
    for i, (img, y) in enumerate(zip(imgs, labels)):
        rel = f"{'train' if i % 4 else 'test'}/c{y % 2}/{i:04d}.{fmt.lower()}"
        im = Image.fromarray(img)
        if rgb_size:
            im = im.convert("RGB").resize((rgb_size, rgb_size))
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        im.save(root / rel, format=fmt)
        names.append(rel)
    return sorted(names)


def reference(encoder_file: Path, root: Path, names: list[str], batch_size: int = 1024) -> np.ndarray:
    """The pipeline's feature extraction of the same images (decoded with PIL as prepare does)."""
    from csl.evaluate.features import extract_features

    ext = load_feature_extractor(encoder_file)
    images = np.stack([np.asarray(Image.open(root / n))[None] for n in names])
    return extract_features(ext.encoder, images, MEAN, STD, batch_size, progress=False).numpy()


def test_folder_zip_and_parquet_equal_the_pipelines_features(tmp_path: Path) -> None:
    from csl.embed.run import embed

    enc = write_encoder(tmp_path / "encoder.pt")
    root = tmp_path / "images"
    names = write_folder(root)
    ref = reference(enc, root, names)
    m = embed(str(enc), str(root), tmp_path / "out", progress=False)
    assert (m["count"], m["dim"], m["format"], m["adapt"]) == (40, 16, "npy", None)
    assert (tmp_path / "out" / "paths.txt").read_text().split() == names
    assert np.array_equal(np.load(tmp_path / "out" / "embeddings.npy"), ref)
    assert json.loads((tmp_path / "out" / "embed.json").read_text())["encoder_sha256"] == m["encoder_sha256"]
    # a zip of the same folder, one top directory inside (stripped, as ImageFolder zips are)
    with zipfile.ZipFile(tmp_path / "images.zip", "w") as z:
        for n in names:
            z.write(root / n, f"images/{n}")
    mz = embed(str(enc), str(tmp_path / "images.zip"), tmp_path / "zip.parquet", batch_size=7, progress=False)
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "zip.parquet")
    assert table.column("path").to_pylist() == [f"images/{n}" for n in names]
    emb = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
    assert mz["input_kind"] == "zip" and emb.shape == (40, 16)
    assert np.allclose(emb, ref, atol=2e-2)  # another batch size: bf16 autocast may round differently
    assert np.array_equal(emb, reference(enc, root, names, batch_size=7))
    assert json.loads(table.schema.metadata[b"csl.embed"])["count"] == 40
    assert not list(tmp_path.glob(".*partial"))


def test_shards_are_named_by_shard_and_index(tmp_path: Path) -> None:
    from csl.data.shards import write_shards
    from csl.embed.run import embed

    enc = write_encoder(tmp_path / "encoder.pt")
    root = tmp_path / "jpegs"
    names = write_folder(root, n=30, fmt="JPEG")
    write_shards((((root / n).read_bytes(), int(n.split("/")[1][1])) for n in names), ["c0", "c1"], tmp_path / "shards",
                 shard_size=8)
    m = embed(str(enc), str(tmp_path / "shards"), tmp_path / "out", progress=False)
    paths = (tmp_path / "out" / "paths.txt").read_text().split()
    assert m["input_kind"] == "shards" and paths[:2] == ["shard-000000.tar#0", "shard-000000.tar#1"]
    assert paths[-1] == "shard-000003.tar#5"
    assert np.array_equal(np.load(tmp_path / "out" / "embeddings.npy"), reference(enc, root, names))


def test_an_interrupted_run_resumes_from_its_finished_chunks(tmp_path: Path) -> None:
    from csl.embed.run import embed, partial_dir

    enc = write_encoder(tmp_path / "encoder.pt")
    root = tmp_path / "images"
    names = write_folder(root, n=50)
    whole = embed(str(enc), str(root), tmp_path / "whole", chunk=16, progress=False)

    def interrupt(k: int) -> None:
        if k == 1:
            raise KeyboardInterrupt

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        embed(str(enc), str(root), out, chunk=16, progress=False, on_chunk=interrupt)
    part = partial_dir(out)
    assert sorted(p.name for p in part.glob("chunk-*.npy")) == ["chunk-000000.npy", "chunk-000001.npy"]
    assert not out.exists()  # nothing half-written
    seen: list[int] = []
    m = embed(str(enc), str(root), out, chunk=16, progress=False, on_chunk=seen.append)
    assert seen == [2, 3] and m["resumed_chunks"] == 2 and m["embedded_now"] == 50 - 32
    assert np.array_equal(np.load(out / "embeddings.npy"), np.load(tmp_path / "whole" / "embeddings.npy"))
    assert whole["count"] == 50 and not part.exists()
    # a partial run of another input is discarded, not mixed in
    with pytest.raises(KeyboardInterrupt):
        embed(str(enc), str(root), out, chunk=16, progress=False, on_chunk=interrupt)
    (root / names[0]).unlink()
    m = embed(str(enc), str(root), out, chunk=16, progress=False)
    assert m["resumed_chunks"] == 0 and m["count"] == 49


def test_bad_input_is_refused_with_the_expected_input(tmp_path: Path) -> None:
    from csl.embed.run import embed

    enc = write_encoder(tmp_path / "encoder.pt")
    rgb = tmp_path / "rgb"
    write_folder(rgb, n=12, rgb_size=20)
    with pytest.raises(CslError, match=r"image test/c0/0000.png is 3x20x20.*takes images of 1x16x16.*--adapt"):
        embed(str(enc), str(rgb), tmp_path / "o", progress=False)
    assert not list(tmp_path.glob(".o.partial"))  # refused before a chunk was done: nothing left behind
    m = embed(str(enc), str(rgb), tmp_path / "o", adapt=True, progress=False)
    assert m["adapt"] == ["resize 20x20->16x16 (bilinear, antialias)", "rgb->luma(BT.601)"] and m["count"] == 12
    bad = tmp_path / "bad"
    write_folder(bad, n=4)
    (bad / "train/c1/0001.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot decode image train/c1/0001.png"):
        embed(str(enc), str(bad), tmp_path / "o2", progress=False)
    with pytest.raises(DataError, match="does not exist"):
        embed(str(enc), str(tmp_path / "nowhere"), tmp_path / "o3", progress=False)
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()
    # the Python API: PIL images in, embeddings out; a wrong shape names the input it expects
    ext = load_feature_extractor(enc)
    imgs = [Image.fromarray(a) for a in digits_images(3)[0]]
    assert np.allclose(ext.embed(imgs), ext(torch.from_numpy(np.stack([np.asarray(i)[None] for i in imgs]))).detach().numpy())
    with pytest.raises(ValueError, match=r"takes images of 1x16x16 .* got a batch of shape \(2, 3, 16, 16\)"):
        ext(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    # the command line: a clear error and a non-zero exit
    r = subprocess.run([str(BIN / "csl"), "embed", str(enc), str(rgb), "-o", str(tmp_path / "o4"), "--no-progress"],
                       cwd=tmp_path, env=csl_env(tmp_path), capture_output=True, text=True)
    assert r.returncode == 2 and "takes images of 1x16x16" in r.stderr and not (tmp_path / "o4").exists()


def test_a_model_that_is_not_a_csl_encoder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    import csl

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)  # restored afterwards
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = mlflow.create_experiment("t", artifact_location=(tmp_path / "art").as_uri())
    with mlflow.start_run(experiment_id=exp):
        mlflow.pytorch.log_model(torch.nn.Linear(3, 2), name="m", serialization_format="pickle",
                                 registered_model_name="someone-elses-model", pip_requirements=["torch"])
    with pytest.raises(CslError, match="not a csl encoder: version 1 of someone-elses-model has no "
                                       "csl.encoder_sha256 tag"):
        csl.load_encoder("models:/someone-elses-model/1")
    MlflowClient().set_model_version_tag("someone-elses-model", "1", "csl.encoder_sha256", "0" * 64)  # a forged tag
    with pytest.raises(CslError, match="its model is a torch.nn.modules.linear.Linear, not "
                                       "csl.encoders.saved.FeatureExtractor"):
        csl.load_encoder("models:/someone-elses-model@champion".replace("@champion", "/1"))
    with pytest.raises(CslError, match="no registered model 'nothing-here'"):
        csl.load_encoder("models:/nothing-here")
    with pytest.raises(CslError, match="not a csl encoder file"):
        torch.save({"weights": 1}, tmp_path / "other.pt")
        csl.load_encoder(tmp_path / "other.pt")  # type: ignore[arg-type]
