import gzip
import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from benchkit.builtins.datasets import basic as datasets
from benchkit.builtins.datasets.basic import FashionMNIST, FashionMNISTMini, ImageFolder, read_idx_images
from benchkit.errors import UserError


def _write_idx(path, images):
    header = b"\x00\x00\x08\x03" + b"".join(int(v).to_bytes(4, "big") for v in images.shape)
    payload = header + images.tobytes()
    with gzip.open(path, "wb") as f:
        f.write(payload)
    return hashlib.sha256(payload).hexdigest()


def test_idx_reader_and_padding(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint32).reshape(3, 28, 28).astype(np.uint8)
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    np.testing.assert_array_equal(read_idx_images(folder / "t10k-images-idx3-ubyte.gz"), images)
    loaded = FashionMNIST(data_dir=str(tmp_path)).images("test", limit=2)
    assert loaded.shape == (2, 1, 32, 32) and loaded.dtype == torch.float32
    assert loaded[:, :, :2].abs().sum() == 0 and loaded[:, :, :, -2:].abs().sum() == 0
    torch.testing.assert_close(loaded[:, 0, 2:30, 2:30], torch.from_numpy(images[:2]).float() / 255)


def test_corrupt_and_missing_idx(tmp_path, monkeypatch):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    with pytest.raises(UserError, match="truncated"):
        FashionMNIST(data_dir=str(tmp_path)).images("test")
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "none")
    monkeypatch.delenv("BENCHKIT_DATA", raising=False)
    with pytest.raises(UserError, match="benchkit data download fashion-mnist"):
        FashionMNIST(data_dir=str(tmp_path / "empty")).images("train")


def test_download_verifies_checksums(tmp_path, monkeypatch):
    source = tmp_path / "mirror"
    source.mkdir()
    files = {}
    for split, name in (("train", "train-images-idx3-ubyte.gz"), ("test", "t10k-images-idx3-ubyte.gz")):
        files[split] = (name, _write_idx(source / name, np.zeros((2, 28, 28), np.uint8) + len(split)))
    labels = {}
    for split, name in (("train", "train-labels-idx1-ubyte.gz"), ("test", "t10k-labels-idx1-ubyte.gz")):
        labels[split] = (name, _write_idx1(source / name, np.array([3, 7], np.uint8)))
    monkeypatch.setattr(datasets, "FASHION_MNIST_FILES", files)
    monkeypatch.setattr(datasets, "FASHION_MNIST_LABEL_FILES", labels)
    dest = FashionMNIST().download(tmp_path / "data", base_url=source.as_uri() + "/")
    assert read_idx_images(dest / "train-images-idx3-ubyte.gz")[0, 0, 0] == 5
    assert FashionMNIST(str(tmp_path / "data")).labels("test").tolist() == [3, 7]
    files["test"] = (files["test"][0], "0" * 64)
    (dest / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(UserError, match="wrong checksum"):
        FashionMNIST().download(tmp_path / "data", base_url=source.as_uri() + "/")
    assert not (dest / "t10k-images-idx3-ubyte.gz").exists()


def _write_idx1(path, labels: np.ndarray) -> str:
    """An IDX1 label file as the Fashion-MNIST distribution has it (magic 0x801, big-endian count)."""
    raw = b"\x00\x00\x08\x01" + len(labels).to_bytes(4, "big") + labels.tobytes()
    path.write_bytes(gzip.compress(raw))
    return hashlib.sha256(raw).hexdigest()


def test_labels_of_the_embedded_subset_are_fashion_mnists():
    labels = FashionMNISTMini().labels("test")
    assert labels.dtype == torch.int64 and labels.shape == (512,)
    # the first ten test labels of Fashion-MNIST (Xiao et al. 2017), as published
    assert labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert np.bincount(FashionMNISTMini().labels("train").numpy(), minlength=10).min() > 900
    if datasets.DEBIAN_FASHION_MNIST.is_dir():
        assert torch.equal(FashionMNIST().labels("test", limit=512), labels)
        assert len(FashionMNIST().labels("train")) == 60000


def test_corrupt_label_file_is_one_line(tmp_path):
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09\x01")
    with pytest.raises(UserError, match="truncated"):
        FashionMNIST(str(tmp_path)).labels("test")


def test_embedded_default_matches_its_description():
    mini = FashionMNISTMini()
    test, train = mini.images("test"), mini.images("train")
    assert test.shape == (512, 1, 32, 32) and train.shape == (10000, 1, 32, 32)
    assert 0.1 < test.mean() < 0.6 and test.min() == 0 and test.max() == 1


def test_real_fashion_mnist_when_installed():
    if not datasets.DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    first = FashionMNIST().images("test", limit=512)
    torch.testing.assert_close(first, FashionMNISTMini().images("test"))


def test_folder_dataset_crops_and_resizes(tmp_path):
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, 10:30] = 255  # the centred 20x20 square is white, the sides black
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
        Image.fromarray(wide).save(tmp_path / split / "a.png")
    out = ImageFolder(str(tmp_path), size=8).images("test")
    assert out.shape == (1, 3, 8, 8)
    assert out.min() > 0.95  # the black sides were cropped away
    gray = ImageFolder(str(tmp_path), size=8, mode="L").images("train")
    assert gray.shape == (1, 1, 8, 8)


def test_folder_dataset_errors(tmp_path):
    with pytest.raises(UserError, match="needs a path"):
        ImageFolder()
    (tmp_path / "x.png").write_bytes(b"junk")
    with pytest.raises(UserError, match="cannot read image"):
        ImageFolder(str(tmp_path)).images("test")
    with pytest.raises(UserError, match="no train/ subfolder"):
        ImageFolder(str(tmp_path)).images("train")


def test_decoded_pixels_are_k_over_full_scale_in_float32():
    """Every 8-bit value k becomes float32(k / 255) and every 16-bit one float32(k / 65535), each
    division done in float64 here and rounded once; float pixels pass through; rows land in order."""
    from benchkit.imaging import decode_into

    eight = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    sixteen = np.arange(0, 65536, 256, dtype=np.uint16).reshape(16, 16, 1) + 255
    floats = np.linspace(0, 1, 256).reshape(16, 16, 1)
    out = torch.empty(3, 1, 16, 16)
    decode_into(out, 3, lambda row: (eight, sixteen, floats)[row])
    np.testing.assert_array_equal(out[0, 0].numpy(), (eight[..., 0] / 255.0).astype(np.float32))
    np.testing.assert_array_equal(out[1, 0].numpy(), (sixteen[..., 0] / 65535.0).astype(np.float32))
    np.testing.assert_array_equal(out[2, 0].numpy(), floats[..., 0].astype(np.float32))
