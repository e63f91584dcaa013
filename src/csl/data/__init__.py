"""Datasets: sources (IDX, CIFAR pickles, ImageFolder dir/zip) and the prepared format."""

from csl.data.config import DataConfig
from csl.data.prepared import Prepared, load, read_meta, write
from csl.data.sources import read

__all__ = ["DataConfig", "Prepared", "load", "read", "read_meta", "write"]
