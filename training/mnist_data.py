"""MNIST's original gzipped IDX files (training/data/mnist), read with gzip and numpy only."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
MNIST_DIR = REPO_ROOT / "training/data/mnist"
TRAIN_IMAGES = MNIST_DIR / "train-images-idx3-ubyte.gz"
TRAIN_LABELS = MNIST_DIR / "train-labels-idx1-ubyte.gz"
TEST_IMAGES = MNIST_DIR / "t10k-images-idx3-ubyte.gz"
TEST_LABELS = MNIST_DIR / "t10k-labels-idx1-ubyte.gz"
ALL_FILES = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]
VALIDATION_SIZE = 5000  # the last 5,000 training images (indices 55,000-59,999)


def read_images(path: Path) -> np.ndarray:
    """uint8 [N, rows, cols]; rows top to bottom, pixels left to right (0 = background)."""
    with gzip.open(path) as fh:
        raw = fh.read()
    magic, count, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in range(0, 16, 4))
    if magic != 2051 or len(raw) != 16 + count * rows * cols:
        raise ValueError(f"{path}: not an IDX3 image file (magic {magic}, {len(raw)} bytes)")
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, rows, cols)


def read_labels(path: Path) -> np.ndarray:
    with gzip.open(path) as fh:
        raw = fh.read()
    magic, count = (int.from_bytes(raw[i : i + 4], "big") for i in (0, 4))
    if magic != 2049 or len(raw) != 8 + count:
        raise ValueError(f"{path}: not an IDX1 label file (magic {magic}, {len(raw)} bytes)")
    return np.frombuffer(raw, np.uint8, offset=8).astype(np.int64)


@dataclass(frozen=True)
class MnistSplits:
    train_x: np.ndarray  # uint8 [55000, 28, 28]
    train_y: np.ndarray
    valid_x: np.ndarray  # uint8 [5000, 28, 28]
    valid_y: np.ndarray
    test_x: np.ndarray  # uint8 [10000, 28, 28]
    test_y: np.ndarray


def load_mnist() -> MnistSplits:
    images, labels = read_images(TRAIN_IMAGES), read_labels(TRAIN_LABELS)
    cut = len(images) - VALIDATION_SIZE
    return MnistSplits(
        images[:cut],
        labels[:cut],
        images[cut:],
        labels[cut:],
        read_images(TEST_IMAGES),
        read_labels(TEST_LABELS),
    )
