"""Data that needs no download: bundled digits, MNIST-format IDX folders on disk, synthetic gradients.

* :mod:`.dataset` — :class:`Dataset`, the train/test split every loader returns.
* :mod:`.digits` — :func:`load_digits`, scikit-learn's bundled 8x8 digits.
* :mod:`.idx` — :func:`load_mnist` and :func:`read_idx`: MNIST-format folders (MNIST, Fashion-MNIST;
  gzip or plain), headers checked, truncated files refused; :class:`DataError`.
* :mod:`.synthetic` — :func:`synthetic_tensor_normal_gradients`, :func:`random_spd`.

Imports run one way: ``dataset`` at the bottom; ``digits`` and ``idx`` on it; ``synthetic`` on
:mod:`tnt_ref.tensor_normal` only.
"""

from .dataset import Dataset
from .digits import N_TEST, SPLIT_SEED, load_digits
from .idx import FASHION_MNIST_DIR, INSTALL_HINT, DataError, default_data_dir, find_mnist_files, load_mnist, read_idx
from .synthetic import random_spd, synthetic_tensor_normal_gradients

__all__ = ["Dataset", "load_digits", "SPLIT_SEED", "N_TEST", "DataError", "read_idx", "load_mnist", "find_mnist_files",
           "default_data_dir", "FASHION_MNIST_DIR", "INSTALL_HINT", "synthetic_tensor_normal_gradients", "random_spd"]
