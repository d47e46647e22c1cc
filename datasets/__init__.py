"""Datasets: the LA h5 layout reader, splits, augmentations, batches and the synthetic LA-like generator."""

from sslbench.datasets.la import DatasetError, LADataset, Volume, open_dataset
from sslbench.datasets.splits import Split, parse_split

__all__ = ["DatasetError", "LADataset", "Split", "Volume", "open_dataset", "parse_split"]
