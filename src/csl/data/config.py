"""The ``data`` section of params.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from csl.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    """Which dataset to prepare and from where.

    ``source: auto`` searches the standard places (for Fashion-MNIST: $CSL_FASHION_MNIST_DIR,
    Debian's /usr/share/datasets/fashion-mnist, then ``download_root``); otherwise a path
    to IDX files, a cifar-10-batches-py directory, or an ImageFolder directory or zip.
    The prepared dataset is written to ``data/prepared``.
    ``max_train``/``max_test`` take a seeded, stratified subset for quick runs.
    """

    dataset: Literal["fashion-mnist", "cifar10", "imagefolder", "shards"] = "fashion-mnist"
    source: str = "auto"
    download: bool = False
    download_root: str = "data/raw"
    image_size: int | None = None
    test_fraction: float = 0.2
    max_train: int | None = None
    max_test: int | None = None

    def validate(self, path: str) -> None:
        if self.dataset == "shards" and (self.source == "auto" or not self.image_size):
            raise ConfigError(f"dataset 'shards' streams images larger than memory: set '{path}.source' to the "
                              "directory or s3:// prefix holding train/ and test/ shards (csl shard), and "
                              f"'{path}.image_size'")
        if self.dataset == "imagefolder" and self.source == "auto":
            raise ConfigError(f"'{path}.source' must be a directory or zip for dataset 'imagefolder'")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"'{path}.test_fraction' must be in (0, 1), got {self.test_fraction}")
        for key in ("max_train", "max_test"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise ConfigError(f"'{path}.{key}' must be positive or null, got {v}")
