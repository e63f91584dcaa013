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

    ``dataset: images`` is a collection of image files without labels (``csl.data.collection``):
    ``source`` a directory or zip (read recursively) or an ``s3://`` prefix; the images are
    kept at their own resolution in shards under ``data/prepared`` and training crops are cut
    from them (``csl.augment.native``). Its keys:

    - ``image_size``: the side of the training views (``size: null`` in the augmentation) and of
      the evaluation's centre crop (required: e.g. 224 for photos, 32 for CIFAR-sized images);
    - ``labels``: ``none`` (the default for ``images``: folder names are never labels) or
      ``folders`` (the first folder under the root is the class, as an ImageFolder). For the
      other kinds null means their own labels; ``none`` ignores them (``shards`` written
      without labels need it);
    - ``color``: ``auto`` (grayscale only when every image is; the decision is recorded in the
      prepared metadata), ``rgb`` or ``gray``;
    - ``min_side``: images with a shorter side are refused (default 16: a 1x1 or 8x8 file is an
      icon or a tracking pixel, not a training image); ``max_side``: the shorter side is reduced
      to it (aspect kept) before storing, null keeps every image at its native size;
    - ``max_pixels``: PIL's decompression-bomb limit (default PIL's 89.5 MP);
    - ``on_corrupt``: ``error`` (default: stop, naming the file) or ``skip`` (leave the file out;
      the count and the first files are in the prepared metadata and the prepare run's metrics);
    - ``shard_size``: images per tar shard;
    - ``test_fraction``: the held-out images for the label-free protocols, chosen by a hash of
      each file's path, so a growing collection keeps its held-out images.
    """

    dataset: Literal["fashion-mnist", "cifar10", "imagefolder", "shards", "images"] = "fashion-mnist"
    source: str = "auto"
    download: bool = False
    download_root: str = "data/raw"
    image_size: int | None = None
    test_fraction: float = 0.2
    max_train: int | None = None
    max_test: int | None = None
    labels: Literal["none", "folders"] | None = None
    color: Literal["auto", "rgb", "gray"] = "auto"
    min_side: int = 16
    max_side: int | None = None
    max_pixels: int = 89_478_485
    on_corrupt: Literal["error", "skip"] = "error"
    shard_size: int = 1000

    @property
    def labelled(self) -> bool:
        """Whether the prepared data has labels: known from the configuration alone, so that the
        pipeline can be planned before any data is read."""
        if self.dataset == "images":
            return self.labels == "folders"
        return self.labels != "none"

    @property
    def in_memory(self) -> bool:
        """Whether the prepared images are held in memory (uint8 arrays) rather than streamed from
        shards (``shards`` and ``images``: images of any number and size)."""
        return self.dataset not in ("shards", "images")

    def validate(self, path: str) -> None:
        if self.labels == "folders" and self.dataset not in ("images", "imagefolder"):
            raise ConfigError(f"'{path}.labels: folders' applies to dataset 'images' (an ImageFolder has folder "
                              "labels already)")
        if self.labels == "none" and self.dataset != "images" and self.dataset != "shards":
            raise ConfigError(f"'{path}.labels: none' is for datasets 'images' and 'shards'; for an unlabeled "
                              f"collection use '{path}.dataset: images'")
        if self.dataset == "images":
            if self.source == "auto":
                raise ConfigError(f"'{path}.source' must be the directory, zip or s3:// prefix of the images for "
                                  "dataset 'images'")
            if not self.image_size or self.image_size < 4:
                raise ConfigError(f"'{path}.image_size' must be set for dataset 'images': the side of the training "
                                  "views and of the evaluation crop (e.g. 224 for photos, 32 for CIFAR-sized images)")
        if self.min_side < 1 or (self.max_side is not None and self.max_side < self.min_side):
            raise ConfigError(f"'{path}.min_side' must be >= 1 and '{path}.max_side' null or >= min_side")
        if self.shard_size < 1 or self.max_pixels < 1:
            raise ConfigError(f"'{path}.shard_size' and '{path}.max_pixels' must be positive")
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
