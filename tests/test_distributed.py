"""Every method on 2 processes (gloo, CPU) with per-rank batch B gives the same loss and the
same gradients as 1 process with batch 2B: the loss is computed over the global batch with an
autograd-aware gather, batch norm uses global statistics, and DDP's gradient average (done
here by hand with an all-reduce) recovers the single-process gradient."""

from __future__ import annotations

import copy
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from csl.methods.base import Method
from csl.distributed import all_reduce_sum, gather
from csl.encoders.global_bn import GlobalBatchNorm, convert_to_global_bn
from csl.methods.config import parse_method
from csl.train.build import build_method
from conftest import tiny_method
from test_methods import META, VARIANTS, batch_for

FIXED = {"crop_scale": [1.0, 1.0], "crop_ratio": [1.0, 1.0], "flip_p": 0.0, "jitter_p": 0.0, "grayscale_p": 0.0}
#: deterministic views, so that one and two processes see the same inputs
AUGMENT = {
    "two": {"name": "views", "groups": [{"count": 2, **FIXED}]},
    "multicrop": {"name": "views", "groups": [{"count": 2, **FIXED}, {"count": 2, "size": 8, **FIXED}]},
    "one": {"name": "views", "groups": [{"count": 1, **FIXED}]},
}
CASES = {  # a case per method (its name), and per loss a method can swap in ("method+loss")
    "simclr": ("two", {}),
    "simclr+dcl": ("two", {"loss": {"name": "dcl", "temperature": 0.5, "tau_plus": 0.1}}),
    "simclr+hcl": ("two", {"loss": {"name": "hcl", "temperature": 0.5, "tau_plus": 0.1, "beta": 1.0}}),
    "supcon": ("two", {}),
    "byol": ("two", {}),
    "simsiam": ("two", {}),
    "barlow_twins": ("two", {}),
    "moco_v2": ("two", {"method": {"name": "moco_v2", "queue_size": 128, "key_bn_groups": 1, "symmetric": True}}),
    "mochi": ("two", {"method": {"name": "mochi", "queue_size": 128, "key_bn_groups": 1, "symmetric": True,
                                 "n_hardest": 16, "s": 8, "s_prime": 4}}),
    "imix": ("two", {}),
    "imix_moco": ("two", {"method": {"name": "imix_moco", "queue_size": 128, "key_bn_groups": 1,
                                     "symmetric": True}}),
    "clae": ("two", {}),
    "kcl": ("two", {"method": {"name": "kcl", "queue_size": 128, "key_bn_groups": 1, "symmetric": True, "k": 3}}),
    "pcl": ("two", {"method": {"name": "pcl", "queue_size": 128, "key_bn_groups": 1, "symmetric": True,
                               "num_clusters": [4, 8], "negative_prototypes": 4, "warmup_epochs": 0}}),
    "moco_v3": ("two", {}),
    "swav": ("multicrop", {"method": {"name": "swav", "prototypes": 10}}),
    "dino": ("multicrop", {}),
    "dim": ("two", {"method": {"name": "dim", "comparisons": [[1, 4]]}}),
    "cpc": ("one", {}),
    # encoders beyond the small CNN: a timm backbone (batch norm made global) and a ViT (frozen patch projection)
    "simclr+timm-resnet18": ("two", {"encoder": {"name": "timm", "model": "resnet18"}}),
    "moco_v3+vit": ("two", {"encoder": {"name": "vit", "image_size": 16, "patch_size": 4, "dim": 32, "depth": 2,
                                        "heads": 2, "freeze_patch_embed": True}}),
}
BATCH = 8  # per rank; the single process takes 2 x BATCH


def build(name: str) -> Method:
    aug, extra = CASES[name]
    raw = {**tiny_method(), **VARIANTS[name.split("+")[0]], **extra, "augment": AUGMENT[aug]}
    torch.manual_seed(0)
    method = build_method(parse_method(raw, f"methods.{name}"), META)
    if hasattr(method, "label_queue"):  # KCL: a filled label queue, so that queued positives take part
        method.label_queue.copy_(torch.arange(method.label_queue.shape[0]) % 3)
    if name == "pcl":  # prototypes of a 256-image training set (this batch: rows 0..15), so ProtoNCE takes part
        method.check_dataset(256, labelled=True)
        method.on_epoch_features(0, torch.nn.functional.normalize(
            torch.randn(256, 16, generator=torch.Generator().manual_seed(9)), dim=1))
    convert_to_global_bn(method)
    return method


def loss_and_grads(method: Method, images: torch.Tensor, labels: torch.Tensor,
                   indices: torch.Tensor) -> tuple[float, dict[str, torch.Tensor]]:
    method.zero_grad()
    batch = batch_for(method, images, labels, indices)
    loss = method.training_loss(batch, torch.Generator().manual_seed(1))["loss"]
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in method.named_parameters() if p.grad is not None}
    return float(loss), grads


def images() -> torch.Tensor:
    return torch.randint(0, 256, (2 * BATCH, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))


def labels() -> torch.Tensor:
    """Three classes over the global batch, so that positives of a class sit on both ranks."""
    return torch.arange(2 * BATCH) % 3


def _worker(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        results = {}
        for name in CASES:
            method = build(name)
            rows = slice(rank * BATCH, (rank + 1) * BATCH)
            loss, grads = loss_and_grads(method, images()[rows], labels()[rows], torch.arange(2 * BATCH)[rows])
            for g in grads.values():  # DDP's gradient average
                dist.all_reduce(g)
                g /= 2
            state = {k: v for k, v in method.state_dict().items() if "queue" in k or "center" in k
                     or "running_mean" in k}
            results[name] = {"loss": loss, "grads": grads, "state": state}
        if rank == 0:
            torch.save(results, out)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("dist") / "results.pt"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_worker, args=(free_port(), str(out)), nprocs=2, join=True)
    return torch.load(out, weights_only=False)


@pytest.mark.parametrize("name", sorted(CASES))
def test_two_processes_equal_one_process(name: str, two_process_results: dict) -> None:
    method = build(name)
    loss, grads = loss_and_grads(method, images(), labels(), torch.arange(2 * BATCH))
    got = two_process_results[name]
    assert got["loss"] == pytest.approx(loss, rel=1e-4, abs=1e-5)
    assert set(got["grads"]) == set(grads)
    for k, g in grads.items():
        # fp32 sums in another order (two half batches, then the all-reduce) differ by rounding
        # relative to the summands, not to the result: an element that cancels to near zero (a ViT's
        # class token) is compared at 1e-3 of its tensor's largest gradient; a wrong world-size
        # scaling or a missing gather differs by tens of percent of it
        atol = max(1e-5, 1e-3 * float(g.abs().max()))
        torch.testing.assert_close(got["grads"][k], g, rtol=1e-3, atol=atol, msg=lambda m, k=k: f"gradient of {k}: {m}")
    state = method.state_dict()
    for k, v in got["state"].items():  # queue, centre and BN running statistics from the global batch
        torch.testing.assert_close(v, state[k], rtol=1e-4, atol=1e-5, msg=k)


def test_every_method_has_a_distributed_case() -> None:
    from csl.methods import METHODS

    assert {c.split("+")[0] for c in CASES} == set(METHODS)


def test_collectives_are_the_identity_on_one_process() -> None:
    x = torch.randn(3, 2, requires_grad=True)
    assert gather(x) is x and all_reduce_sum(x) is x
    bn = torch.nn.BatchNorm1d(2)
    gbn = convert_to_global_bn(copy.deepcopy(bn))
    assert isinstance(gbn, GlobalBatchNorm)
    torch.testing.assert_close(gbn(x), bn(x))


def test_fit_converts_batch_norm_only_for_several_processes(tmp_path: Path) -> None:
    method = build_method(parse_method(tiny_method(), "m"), META)
    assert not any(isinstance(m, GlobalBatchNorm) for m in method.modules())
