"""The method contract (csl.methods.base): labels and indices reach a method only when it declares
it needs them, and are those of its images; a method that needs labels is refused on a dataset
without them before training; the between-epochs hook receives the whole training set's features
(eval mode, dataset order, the same on two processes as on one), and a resumed run gets the
features of the uninterrupted run."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from csl.augment.view import normalize
from csl.errors import ConfigError
from csl.methods.base import Batch, Method, Needs
from csl.methods.config import parse_method
from csl.methods.simclr import SimCLR
from csl.methods.supcon import SupCon
from csl.train.build import build_method
from csl.train.data import InMemoryImages
from csl.train.features import dataset_features
from csl.train.fit import fit
from conftest import tiny_method
from test_methods import META, VARIANTS
from test_train import CrashAtEpoch


def supcon_cfg(epochs: int = 1) -> Any:
    return parse_method({**tiny_method(epochs=epochs), **VARIANTS["supcon"]}, "methods.supcon")


def test_the_loader_gives_labels_and_indices_only_when_asked() -> None:
    images = torch.arange(5 * 4, dtype=torch.uint8).view(5, 1, 2, 2)
    labels = np.array([3, 1, 4, 1, 5])
    assert isinstance(InMemoryImages(images).__getitems__([4, 0]), torch.Tensor)  # the unchanged path
    got = InMemoryImages(images, labels, with_indices=True).__getitems__([4, 0])
    assert isinstance(got, Batch)
    assert torch.equal(got.images, images[[4, 0]]) and got.labels.tolist() == [5, 3] and got.indices.tolist() == [4, 0]
    only = InMemoryImages(images, labels).__getitems__([2])
    assert only.labels.tolist() == [4] and only.indices is None


def test_every_hook_is_declared_with_a_no_op_default() -> None:
    m = Method()
    m.before_step(0, 10, 5)
    m.after_backward()
    assert m.after_step(0, 10) == {} and m.wants_features(0) is False and m.needs == Needs()
    m.check_dataset(10, labelled=False)  # needs nothing: any dataset
    with pytest.raises(NotImplementedError):
        m.training_loss(Batch(torch.zeros(1, 1, 2, 2, dtype=torch.uint8)), torch.Generator())


def test_a_method_gets_the_labels_of_its_images(prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    seen: list[Batch] = []
    original = SupCon.training_loss

    def spy(self: SupCon, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        seen.append(batch)
        return original(self, batch, generator)

    monkeypatch.setattr(SupCon, "training_loss", spy)
    monkeypatch.setattr(SupCon, "needs", Needs(labels=True, indices=True))  # indices, to check the labels
    fit(supcon_cfg(), prepared, tmp_path / "ckpt")
    train = prepared.train
    assert len(seen) == 256 // 64
    for b in seen:
        assert b.labels is not None and b.indices is not None
        assert torch.equal(b.images, torch.as_tensor(train.images)[b.indices])
        assert torch.equal(b.labels, torch.as_tensor(train.labels)[b.indices])
    assert len(torch.cat([b.indices for b in seen]).unique()) == 256  # one epoch: every image once


def test_a_self_supervised_method_gets_images_only(prepared, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Batch] = []
    original = SimCLR.training_loss
    monkeypatch.setattr(SimCLR, "training_loss", lambda self, b, g: seen.append(b) or original(self, b, g))
    fit(parse_method(tiny_method(), "m"), prepared, tmp_path / "ckpt")
    assert seen and all(b.labels is None and b.indices is None for b in seen)


def test_labels_on_an_unlabelled_dataset_fail_before_training(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    one_class = dataclasses.replace(prepared, meta={**prepared.meta, "classes": ["all"]})
    with pytest.raises(ConfigError, match="method SupCon needs labels, and this dataset has none"):
        fit(supcon_cfg(), one_class, tmp_path / "ckpt")
    assert not (tmp_path / "ckpt" / "last.ckpt").exists()


class Recorder:
    """Patches SimCLR's between-epochs hook: wants every epoch, records what it receives."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, images: np.ndarray, meta: dict) -> None:
        self.calls: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        rec = self

        def on_epoch_features(self: SimCLR, epoch: int, features: torch.Tensor) -> None:
            assert self.training  # train mode is back for the epoch
            self.eval()  # the reference in eval mode (running BN statistics): the framework's must equal it
            with torch.no_grad():
                ref = self.encoder(normalize(torch.as_tensor(images), torch.tensor(meta["mean"]),
                                             torch.tensor(meta["std"])))
            self.train()
            rec.calls.append((epoch, features.clone(), ref))

        monkeypatch.setattr(SimCLR, "wants_features", lambda self, epoch: True)
        monkeypatch.setattr(SimCLR, "on_epoch_features", on_epoch_features)


def test_the_between_epochs_hook_gets_the_training_sets_features(prepared, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch, prepared.train.images, prepared.meta)
    fit(parse_method(tiny_method(epochs=2), "m"), prepared, tmp_path / "ckpt")
    assert [c[0] for c in rec.calls] == [0, 1]
    for _, feats, ref in rec.calls:
        assert feats.shape == (256, ref.shape[1])  # every image, dataset order, eval-mode BN
        torch.testing.assert_close(feats, ref, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(rec.calls[0][1], rec.calls[1][1])  # computed again after an epoch of training


def test_a_resumed_run_gets_the_features_of_the_uninterrupted_run(prepared, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch, prepared.train.images, prepared.meta)
    cfg = parse_method(tiny_method(epochs=3), "m")
    fit(cfg, prepared, tmp_path / "a")
    straight = {e: f for e, f, _ in rec.calls}
    rec.calls.clear()
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(cfg, prepared, tmp_path / "b", extra_callbacks=[CrashAtEpoch(2)])
    rec.calls.clear()
    fit(cfg, prepared, tmp_path / "b")
    assert [e for e, _, _ in rec.calls] == [2]
    torch.testing.assert_close(rec.calls[0][1], straight[2], rtol=0, atol=0)


def _features_worker(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        torch.save(dataset_features(_method(), _images(), [0.3], [0.3], torch.device("cpu"), batch_size=4),
                   f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _method() -> Method:
    torch.manual_seed(0)
    return build_method(parse_method(tiny_method(), "m"), META)


def _images() -> torch.Tensor:
    return torch.randint(0, 256, (11, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))


def test_two_processes_compute_the_same_features_as_one(tmp_path: Path) -> None:
    """11 rows over 2 ranks (6 + 5, the last share padded and cut): every rank gets all 11 rows in
    dataset order, equal to one process's."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_features_worker, args=(port, str(tmp_path / "f")), nprocs=2, join=True)
    single = dataset_features(_method(), _images(), [0.3], [0.3], torch.device("cpu"), batch_size=4)
    assert single.shape == (11, 16)
    for r in (0, 1):
        torch.testing.assert_close(torch.load(tmp_path / f"f.{r}"), single, rtol=1e-5, atol=1e-6)
