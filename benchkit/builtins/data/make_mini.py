"""Rebuild fashion-mnist-mini.npz from the Fashion-MNIST IDX files.

    python benchkit/builtins/data/make_mini.py /usr/share/datasets/fashion-mnist

Keeps the first 512 test images and the first 10,000 training images (28x28 uint8; the dataset
plugin pads them to 32x32 when loading) and their class labels (uint8, 0-9).
"""
import sys
from pathlib import Path

import numpy as np

from benchkit.builtins.datasets.basic import read_idx_images, read_idx_labels

source = Path(sys.argv[1])
np.savez_compressed(
    Path(__file__).parent / "fashion-mnist-mini.npz",
    test=read_idx_images(source / "t10k-images-idx3-ubyte.gz")[:512],
    train=read_idx_images(source / "train-images-idx3-ubyte.gz")[:10000],
    test_labels=read_idx_labels(source / "t10k-labels-idx1-ubyte.gz")[:512],
    train_labels=read_idx_labels(source / "train-labels-idx1-ubyte.gz")[:10000],
)
