"""Datasets: the LA h5 layout reader, splits, augmentations, batches and the synthetic LA-like generator.

Importing this package imports nothing else (no numpy or h5py): modules are imported by name where used.
"""
