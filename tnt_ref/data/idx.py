"""MNIST-format IDX files from a folder on disk (gzip or plain); nothing is ever downloaded.

The IDX format (LeCun et al., the MNIST distribution; also Fashion-MNIST, Xiao et al. 2017): a
big-endian header ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian ``uint32`` sizes, then the
values in row-major (C) order. MNIST's four files: ``train-images-idx3-ubyte`` (magic ``0x00000803``,
``uint8``, ``(60000, 28, 28)``), ``train-labels-idx1-ubyte`` (magic ``0x00000801``, ``(60000,)``) and the
``t10k-`` pair for the test set, each plain or gzip-compressed (``.gz``).

* :func:`read_idx` — one IDX file as a NumPy array, its header checked against its length (a
  truncated file, or one with bytes beyond what its header promises, is refused).
* :func:`load_mnist` — the four files of a folder as a :class:`~tnt_ref.data.dataset.Dataset` with
  pixels scaled to ``[0, 1]`` (Bernoulli means for the paper's autoencoder [RG21, Sec. 5]).
  The folder defaults to Debian's Fashion-MNIST (``apt-get install dataset-fashion-mnist``).

Every problem with the data raises :class:`DataError`, one line naming the file and what is wrong.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from .dataset import Dataset

__all__ = ["DataError", "read_idx", "load_mnist", "find_mnist_files", "default_data_dir", "FASHION_MNIST_DIR",
           "INSTALL_HINT", "IDX_TYPES", "MNIST_FILES"]

#: Where Debian's ``dataset-fashion-mnist`` package puts its four gzip-compressed IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: The install line named by every "data not found" error.
INSTALL_HINT = "apt-get install dataset-fashion-mnist"

#: IDX type byte -> big-endian NumPy dtype.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

#: The four files of an MNIST-format folder: role -> (standard name, magic number). Each may end in
#: ``.gz``; the names with a dot before ``idx`` (``train-images.idx3-ubyte``) are accepted too.
MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte", 0x00000803),
    "train_labels": ("train-labels-idx1-ubyte", 0x00000801),
    "test_images": ("t10k-images-idx3-ubyte", 0x00000803),
    "test_labels": ("t10k-labels-idx1-ubyte", 0x00000801),
}

_GZIP_MAGIC = b"\x1f\x8b"


class DataError(ValueError):
    """A data folder or file is missing, unreadable, truncated or not in the expected format."""


def default_data_dir() -> Path | None:
    """:data:`FASHION_MNIST_DIR` if that folder exists, else ``None``."""
    return FASHION_MNIST_DIR if FASHION_MNIST_DIR.is_dir() else None


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}.") from None
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:  # truncated stream, bad header or CRC, corrupt data
        raise DataError(f"{path} is a truncated or corrupt gzip file ({err}).") from None


def _parse_idx(raw: bytes, path: Path) -> np.ndarray:
    if len(raw) < 4:
        raise DataError(f"{path} is not an IDX file: {len(raw)} bytes, shorter than the 4-byte magic number.")
    zero0, zero1, code, ndim = raw[:4]
    magic = int.from_bytes(raw[:4], "big")
    if zero0 or zero1 or code not in IDX_TYPES or ndim == 0:
        raise DataError(f"{path} is not an IDX file: magic number 0x{magic:08x} (expected 0x000008NN for bytes, "
                        "e.g. 0x00000803 for images, 0x00000801 for labels).")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: its header needs {header} bytes for {ndim} sizes; the file has {len(raw)}.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_TYPES[code])
    need = math.prod(dims) * dtype.itemsize
    have = len(raw) - header
    if have < need:
        raise DataError(f"{path} is truncated: its header promises shape {dims} ({need} bytes of data); "
                        f"the file holds {have}.")
    if have > need:
        raise DataError(f"{path} has {have - need} bytes after the {need} bytes of data its header "
                        f"(shape {dims}) promises; not a well-formed IDX file.")
    return np.frombuffer(raw, dtype=dtype, count=math.prod(dims), offset=header).reshape(dims)


def read_idx(path: str | Path, *, magic: int | None = None) -> np.ndarray:
    """One IDX file (plain or gzip, told by its first bytes) as a read-only array in native byte order.

    Parameters
    ----------
    path : str or Path
    magic : int, optional
        The magic number the file must carry (``0x00000803``: ``uint8`` images ``(n, rows, cols)``;
        ``0x00000801``: ``uint8`` labels ``(n,)``).

    Returns
    -------
    numpy.ndarray
        Shape as the header says ``(d_1, ..., d_ndim)``, row-major; dtype from the type byte.

    Raises
    ------
    DataError
        The file cannot be read, is a broken gzip stream, carries another magic number, is shorter
        than its header promises (truncated) or longer.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x-idx2-ubyte"
    >>> _ = p.write_bytes(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 3, 4, 5]))
    >>> read_idx(p, magic=0x00000802).tolist()
    [[0, 1, 2], [3, 4, 5]]
    """
    path = Path(path)
    raw = _read_bytes(path)
    if magic is not None and len(raw) >= 4 and int.from_bytes(raw[:4], "big") != magic:
        got = int.from_bytes(raw[:4], "big")
        raise DataError(f"{path} has magic number 0x{got:08x}; expected 0x{magic:08x} "
                        f"({'uint8 images (n, rows, cols)' if magic == 0x803 else 'uint8 labels (n,)' if magic == 0x801 else 'IDX'}).")
    a = _parse_idx(raw, path)
    a = a.astype(a.dtype.newbyteorder("="), copy=False)
    a.flags.writeable = False
    return a


def find_mnist_files(folder: str | Path) -> dict[str, Path]:
    """The four MNIST-format files of ``folder``: role (:data:`MNIST_FILES`) -> path.

    For each role the first existing name of ``<name>``, ``<name>.gz``, and the same with a dot
    before ``idx`` is taken.

    Raises
    ------
    DataError
        ``folder`` is not a folder, or lacks some of the four files (all missing ones are named).
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DataError(f"data folder {folder} {what}; give a folder holding MNIST's four IDX files (gzip or plain), "
                        f"or install Fashion-MNIST with `{INSTALL_HINT}` (into {FASHION_MNIST_DIR}/).")
    found, missing = {}, []
    for role, (name, _) in MNIST_FILES.items():
        dotted = name.replace("-idx", ".idx")
        for cand in (name, name + ".gz", dotted, dotted + ".gz"):
            if (folder / cand).is_file():
                found[role] = folder / cand
                break
        else:
            missing.append(f"{name}[.gz]")
    if missing:
        raise DataError(f"data folder {folder} lacks {', '.join(missing)}; give a folder holding MNIST's four IDX files "
                        f"(gzip or plain), or install Fashion-MNIST with `{INSTALL_HINT}` (into {FASHION_MNIST_DIR}/).")
    return found


@functools.lru_cache(maxsize=2)
def _load_raw(files: tuple, image_shape: tuple | None) -> tuple:
    """The four checked arrays (read-only uint8) and a SHA-256 of them (16 hex digits); cached on the paths,
    sizes and modification times."""
    arrays = {}
    for role, path, _size, _mtime in files:
        arrays[role] = read_idx(path, magic=MNIST_FILES[role][1])
    paths = {role: path for role, path, _, _ in files}
    for part in ("train", "test"):
        X, y = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if X.dtype != np.uint8 or X.ndim != 3:
            raise DataError(f"{paths[f'{part}_images']} holds {X.dtype} of shape {X.shape}; expected uint8 images (n, rows, cols).")
        if image_shape is not None and tuple(X.shape[1:]) != tuple(image_shape):
            raise DataError(f"{paths[f'{part}_images']} holds {X.shape[1]}x{X.shape[2]} images; expected "
                            f"{image_shape[0]}x{image_shape[1]}.")
        if X.shape[0] != y.shape[0]:
            raise DataError(f"{paths[f'{part}_images']} holds {X.shape[0]} images but {paths[f'{part}_labels']} "
                            f"holds {y.shape[0]} labels; the counts must agree.")
        if X.shape[0] == 0:
            raise DataError(f"{paths[f'{part}_images']} holds no images.")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DataError(f"the training images are {arrays['train_images'].shape[1:]} and the test images "
                        f"{arrays['test_images'].shape[1:]}; they must have one size.")
    h = hashlib.sha256()
    for r in MNIST_FILES:
        h.update(f"{r}{arrays[r].shape}".encode())
        h.update(arrays[r].tobytes())
    return (*(arrays[r] for r in MNIST_FILES), h.hexdigest()[:16])


def load_mnist(folder: str | Path | None = None, *, images: bool = False, dtype=np.float64,
               image_shape: tuple[int, int] | None = (28, 28)) -> Dataset:
    """An MNIST-format folder (MNIST, Fashion-MNIST, ...) as a train/test :class:`Dataset` in ``[0, 1]``.

    Pixels are scaled by ``1/255`` (the Bernoulli means of the paper's MNIST autoencoder
    [RG21, Sec. 5] [code]); labels are ``int64``. The files' order is kept (no shuffling): the
    split is the one the distribution ships (MNIST and Fashion-MNIST: 60,000 / 10,000).
    Nothing is downloaded; the checked files are cached per process (keyed on their paths, sizes
    and modification times). The result's ``fingerprint`` (a SHA-256 of the four arrays as read,
    16 hex digits) tells whether two folders hold the same data, whatever their compression.

    Parameters
    ----------
    folder : str or Path, optional
        Holds the four files of :data:`MNIST_FILES`, gzip or plain. Default: :data:`FASHION_MNIST_DIR`
        when it exists (Debian's ``dataset-fashion-mnist``).
    images : bool
        ``(n, 1, rows, cols)`` images instead of ``(n, rows * cols)`` row-major vectors.
    dtype
        Floating dtype of the images.
    image_shape : (int, int) or None
        The image size the files must hold; ``None`` accepts any.

    Raises
    ------
    DataError
        No folder given and none installed; a file missing, unreadable, truncated, of another
        magic number or image size; image and label counts that differ.
    """
    if folder is None:
        folder = default_data_dir()
        if folder is None:
            raise DataError(f"no data folder given and {FASHION_MNIST_DIR} does not exist; install Fashion-MNIST "
                            f"with `{INSTALL_HINT}`, or give a folder holding MNIST's four IDX files (gzip or plain).")
    paths = find_mnist_files(folder)
    key = []
    for role in MNIST_FILES:
        st = paths[role].stat()
        key.append((role, paths[role].resolve(), st.st_size, st.st_mtime_ns))
    Xtr, ytr, Xte, yte, fingerprint = _load_raw(tuple(key), None if image_shape is None else tuple(int(s) for s in image_shape))
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"`dtype` must be a floating dtype; got dtype={dtype}.")

    def scale(X):  # (n, rows, cols) uint8 -> (n, rows * cols) or (n, 1, rows, cols) in [0, 1]
        X = X.astype(dtype) / dtype.type(255)
        return X.reshape(X.shape[0], 1, *X.shape[1:]) if images else X.reshape(X.shape[0], -1)

    return Dataset(scale(Xtr), ytr.astype(np.int64), scale(Xte), yte.astype(np.int64), name=Path(folder).resolve().name,
                   source=str(Path(folder).resolve()), fingerprint=fingerprint)
