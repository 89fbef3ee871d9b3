"""MNIST-format IDX loader: header pins, gzip and plain, every refusal, on files the tests write."""

from __future__ import annotations

import gzip
import socket

import numpy as np
import pytest

from tests.conftest import write_idx, write_mnist_folder
from tnt_ref.data import DataError, load_digits, load_mnist, read_idx
from tnt_ref.data import idx as idx_mod

NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------- read_idx
def test_header_pinned_literally(tmp_path):
    # magic 0x00000803, sizes 2, 2, 3 (big-endian), then 12 bytes row-major
    p = tmp_path / "x"
    p.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(12)))
    a = read_idx(p, magic=0x803)
    assert a.dtype == np.uint8 and a.shape == (2, 2, 3)
    np.testing.assert_array_equal(a, np.arange(12).reshape(2, 2, 3))
    assert not a.flags.writeable


@pytest.mark.parametrize("type_byte,dtype", [(0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32),
                                             (0x0E, np.float64)])
def test_other_types_big_endian(tmp_path, type_byte, dtype):
    a = np.array([[-3, 1, 2], [7, -100, 5]], dtype=dtype)
    write_idx(tmp_path / "x", a, type_byte=type_byte)
    b = read_idx(tmp_path / "x")
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("gz", [False, True])
def test_gzip_told_by_content_not_name(tmp_path, gz):
    a = np.arange(6, dtype=np.uint8)
    write_idx(tmp_path / "no-suffix", a, gz=gz)  # a gzip file without .gz, or a plain one
    np.testing.assert_array_equal(read_idx(tmp_path / "no-suffix"), a)


def test_truncated_plain(tmp_path):
    write_idx(tmp_path / "x", np.zeros((3, 4, 4), np.uint8))
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(raw[:-1])
    with pytest.raises(DataError, match=r"is truncated: its header promises shape \(3, 4, 4\) \(48 bytes of data\); "
                                        r"the file holds 47") as e:
        read_idx(tmp_path / "x")
    one_line(e)


def test_truncated_header(tmp_path):
    (tmp_path / "x").write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 9]))
    with pytest.raises(DataError, match="is truncated: its header needs 16 bytes"):
        read_idx(tmp_path / "x")


def test_truncated_gzip(tmp_path):
    write_idx(tmp_path / "x.gz", np.zeros((50, 28, 28), np.uint8), gz=True)
    raw = (tmp_path / "x.gz").read_bytes()
    (tmp_path / "x.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated or corrupt gzip") as e:
        read_idx(tmp_path / "x.gz")
    one_line(e)


def test_gzip_of_a_truncated_idx(tmp_path):
    raw = bytes([0, 0, 8, 1, 0, 0, 0, 10]) + bytes(9)
    (tmp_path / "x.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match=r"promises shape \(10,\) \(10 bytes of data\); the file holds 9"):
        read_idx(tmp_path / "x.gz")


def test_trailing_bytes_refused(tmp_path):
    (tmp_path / "x").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3]))
    with pytest.raises(DataError, match="has 1 bytes after the 2 bytes of data"):
        read_idx(tmp_path / "x")


@pytest.mark.parametrize("head", [b"\x89PNG", bytes([0, 1, 8, 1]), bytes([0, 0, 7, 1]), bytes([0, 0, 8, 0]), b"ab"])
def test_not_an_idx_file(tmp_path, head):
    (tmp_path / "x").write_bytes(head + bytes(8))
    with pytest.raises(DataError, match="is not an IDX file") as e:
        read_idx(tmp_path / "x")
    one_line(e)


def test_wrong_magic_named(tmp_path):
    write_idx(tmp_path / "x", np.zeros(5, np.uint8))  # labels (0x801) where images (0x803) are expected
    with pytest.raises(DataError, match=r"has magic number 0x00000801; expected 0x00000803 \(uint8 images"):
        read_idx(tmp_path / "x", magic=0x803)


def test_unreadable(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "absent")


# ---------------------------------------------------------------- load_mnist
@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_values(tmp_path, gz):
    a = write_mnist_folder(tmp_path, gz=gz)
    ds = load_mnist(tmp_path)
    assert ds.X_train.shape == (40, 784) and ds.X_test.shape == (20, 784) and ds.X_train.dtype == np.float64
    # row-major flattening, /255 scaling, order kept
    np.testing.assert_array_equal(ds.X_train[3].reshape(28, 28), a["train_images"][3] / 255.0)
    np.testing.assert_array_equal(ds.X_test, a["test_images"].reshape(20, -1) / 255.0)
    np.testing.assert_array_equal(ds.y_train, a["train_labels"])
    assert ds.y_train.dtype == np.int64 and ds.name == tmp_path.name
    assert ds.X_train.min() >= 0 and ds.X_train.max() <= 1
    im = load_mnist(tmp_path, images=True, dtype=np.float32)
    assert im.X_train.shape == (40, 1, 28, 28) and im.X_train.dtype == np.float32
    np.testing.assert_allclose(im.X_train[:, 0], a["train_images"] / np.float32(255))


def test_load_mnist_dotted_names_and_mixed_compression(tmp_path):
    r = np.random.default_rng(1)
    X = r.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    y = np.arange(4, dtype=np.uint8)
    write_idx(tmp_path / "train-images.idx3-ubyte", X)
    write_idx(tmp_path / "train-labels.idx1-ubyte.gz", y, gz=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", X, gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", y)
    ds = load_mnist(tmp_path)
    np.testing.assert_array_equal(ds.y_test, y)
    np.testing.assert_array_equal(ds.X_train, X.reshape(4, -1) / 255.0)


def test_results_are_fresh_copies(tmp_path):
    write_mnist_folder(tmp_path)
    ds = load_mnist(tmp_path)
    ds.X_train[:] = 7.0
    assert load_mnist(tmp_path).X_train.max() <= 1.0


def test_cache_follows_the_files(tmp_path):
    write_mnist_folder(tmp_path, n_train=40, seed=0)
    first = load_mnist(tmp_path).X_train
    write_mnist_folder(tmp_path, n_train=30, seed=1)
    assert load_mnist(tmp_path).X_train.shape[0] == 30
    assert first.shape[0] == 40


def test_missing_files_named_with_install_line(tmp_path):
    write_mnist_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError) as e:
        load_mnist(tmp_path)
    msg = one_line(e)
    assert "lacks train-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and str(tmp_path) in msg


@pytest.mark.parametrize("kind", ["absent", "file"])
def test_folder_itself(tmp_path, kind):
    p = tmp_path / "d"
    if kind == "file":
        p.write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder" if kind == "file" else "does not exist") as e:
        load_mnist(p)
    assert "apt-get install dataset-fashion-mnist" in one_line(e)


def test_default_folder_absent(tmp_path, monkeypatch):
    monkeypatch.setattr(idx_mod, "FASHION_MNIST_DIR", tmp_path / "none")
    with pytest.raises(DataError, match=r"no data folder given and .*none does not exist; install Fashion-MNIST with "
                                        r"`apt-get install dataset-fashion-mnist`"):
        load_mnist()


def test_default_folder_used(tmp_path, monkeypatch):
    a = write_mnist_folder(tmp_path / "fm", n_train=5, n_test=3)
    monkeypatch.setattr(idx_mod, "FASHION_MNIST_DIR", tmp_path / "fm")
    np.testing.assert_array_equal(load_mnist().y_test, a["test_labels"])


def test_count_mismatch(tmp_path):
    write_mnist_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(39, np.uint8), gz=True)
    with pytest.raises(DataError, match="holds 40 images but .*train-labels-idx1-ubyte.gz holds 39 labels"):
        load_mnist(tmp_path)


def test_image_size_checked(tmp_path):
    write_mnist_folder(tmp_path, size=8)
    with pytest.raises(DataError, match="holds 8x8 images; expected 28x28"):
        load_mnist(tmp_path)
    assert load_mnist(tmp_path, image_shape=None).X_train.shape == (40, 64)


def test_train_and_test_sizes_agree(tmp_path):
    write_mnist_folder(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((20, 8, 8), np.uint8), gz=True)
    with pytest.raises(DataError, match="must have one size"):
        load_mnist(tmp_path, image_shape=None)


def test_images_must_be_bytes(tmp_path):
    write_mnist_folder(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((40, 28, 28)), gz=True, type_byte=0x0D)
    with pytest.raises(DataError, match="magic number 0x00000d03; expected 0x00000803"):
        load_mnist(tmp_path)


def test_truncated_file_in_folder(tmp_path):
    write_mnist_folder(tmp_path, gz=False)
    p = tmp_path / "t10k-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte is truncated"):
        load_mnist(tmp_path)


def test_empty_set_refused(tmp_path):
    write_mnist_folder(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((0, 28, 28), np.uint8), gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(0, np.uint8), gz=True)
    with pytest.raises(DataError, match="holds no images"):
        load_mnist(tmp_path)


def test_integer_dtype_refused(tmp_path):
    write_mnist_folder(tmp_path)
    with pytest.raises(ValueError, match="must be a floating dtype"):
        load_mnist(tmp_path, dtype=np.uint8)


def test_no_network(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the loader opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    write_mnist_folder(tmp_path)
    load_mnist(tmp_path)
    monkeypatch.setattr(idx_mod, "FASHION_MNIST_DIR", tmp_path / "none")
    with pytest.raises(DataError):
        load_mnist()


def test_digits_still_importable_from_the_package():
    from tnt_ref.data import Dataset, random_spd, synthetic_tensor_normal_gradients  # noqa: F401

    assert load_digits().X_train.shape == (1497, 64)


def test_fingerprint_follows_content_not_compression(tmp_path):
    write_mnist_folder(tmp_path / "a", gz=True, seed=3)
    write_mnist_folder(tmp_path / "b", gz=False, seed=3)
    write_mnist_folder(tmp_path / "c", gz=True, seed=4)
    fa, fb, fc = (load_mnist(tmp_path / k) for k in "abc")
    assert fa.fingerprint == fb.fingerprint != fc.fingerprint and len(fa.fingerprint) == 16
    assert fa.source == str((tmp_path / "a").resolve()) and load_digits().fingerprint == ""
