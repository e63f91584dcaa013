"""The peer: lightly's standard SimCLR recipe as its documentation shows it (examples/pytorch/
simclr.py): ``SimCLRTransform`` on PIL images, a torch ``DataLoader`` with workers,
``SimCLRProjectionHead``, ``NTXentLoss``, SGD, fp32. The backbone is the same architecture as
csl's (torchvision ResNet-18 with the CIFAR stem, or csl's small CNN) so that both sides do the
same arithmetic. Run by ``benchmarks/throughput.py`` with lightly on PYTHONPATH (installed for
the benchmark only); prints one JSON line.

    python benchmarks/peer_lightly.py DATA.npz --encoder resnet18|small --steps N [--epochs E --save F]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset


class ArrayImages(Dataset):
    """In-memory uint8 images as PIL, like torchvision's CIFAR10/FashionMNIST datasets."""

    def __init__(self, images: np.ndarray, transform, labels: np.ndarray | None = None) -> None:  # type: ignore[no-untyped-def]
        self.images, self.transform, self.labels = images, transform, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        x = self.images[i]
        img = Image.fromarray(x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0), mode="L" if x.shape[0] == 1 else "RGB")
        return self.transform(img), 0 if self.labels is None else int(self.labels[i])


def backbone(encoder: str, channels: int) -> tuple[nn.Module, int]:
    if encoder == "resnet18":
        import torchvision

        net = torchvision.models.resnet18()
        net.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)  # CIFAR stem (SimCLR B.9)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        return net, 512
    from csl.encoders.small_cnn import SmallCNN

    net = SmallCNN(channels, [32, 64, 128])
    return net, net.out_dim


def main() -> None:
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform

    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=0, help="train whole epochs instead (for accuracy)")
    ap.add_argument("--save", help="write the backbone's state_dict here")
    ap.add_argument("--min-scale", type=float, default=0.08)
    ap.add_argument("--cj-strength", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=0.5)
    args = ap.parse_args()
    d = np.load(args.data)
    images, mean, std = d["images"], d["mean"].tolist(), d["std"].tolist()
    c, size = images.shape[1], images.shape[2]
    transform = SimCLRTransform(input_size=size, min_scale=args.min_scale, cj_strength=args.cj_strength,
                                gaussian_blur=0.0, normalize={"mean": mean, "std": std})
    loader = DataLoader(ArrayImages(images, transform), batch_size=args.batch, shuffle=True, drop_last=True,
                        num_workers=args.workers, persistent_workers=args.workers > 0)
    torch.manual_seed(0)
    net, dim = backbone(args.encoder, c)
    head = SimCLRProjectionHead(dim, 512, 128)
    model = nn.Sequential(net, head)
    criterion = NTXentLoss(temperature=args.temperature)
    opt = torch.optim.SGD(model.parameters(), lr=0.06)

    def step(views) -> float:  # type: ignore[no-untyped-def]
        x0, x1 = views
        loss = criterion(model(x0), model(x1))
        loss.backward()
        opt.step()
        opt.zero_grad()
        return float(loss)

    model.train()
    if args.epochs:
        start = time.perf_counter()
        n = 0
        for _ in range(args.epochs):
            for views, _ in loader:
                step(views)
                n += args.batch
        secs = time.perf_counter() - start
        if args.save:
            torch.save(net.state_dict(), args.save)
        print(json.dumps({"images_per_s": n / secs, "seconds": secs, "images": n}))
        return
    def batches():  # type: ignore[no-untyped-def]
        while True:
            yield from loader

    it = batches()
    for _ in range(args.warmup):
        step(next(it)[0])
    start = time.perf_counter()
    for _ in range(args.steps):
        step(next(it)[0])
    secs = time.perf_counter() - start
    print(json.dumps({"images_per_s": args.batch * args.steps / secs, "seconds": secs}))


if __name__ == "__main__":
    main()
