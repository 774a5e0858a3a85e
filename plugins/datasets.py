"""Built-in datasets: ``fashion-mnist``, the embedded ``fashion-mnist-mini`` and ``folder``."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import torch

from benchkit.datafiles import data_folders, fetch
from benchkit.errors import UserError
from benchkit.hookspecs import hookimpl
from benchkit.interfaces import Dataset, Split

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
MINI_FILE = Path(__file__).parent / "data" / "fashion-mnist-mini.npz"
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# SHA-256 of the *decompressed* IDX files, so a recompressed mirror still verifies.
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "test": ("t10k-images-idx3-ubyte.gz", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def read_idx_images(path: Path) -> np.ndarray:
    """Read an IDX3 image file (optionally gzipped) into an ``N x H x W`` uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise UserError(f"cannot read IDX file {path} ({exc}): delete it and download it again") from exc
    if len(data) < 16 or data[:4] != b"\x00\x00\x08\x03":
        raise UserError(f"{path} is not an IDX3 uint8 image file: delete it and download it again")
    n, h, w = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
    if len(data) != 16 + n * h * w:
        raise UserError(f"{path} is truncated ({len(data)} bytes for {n} images): download it again")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, h, w)


def to_tensor(images: np.ndarray, pad_to: int | None = None) -> torch.Tensor:
    """Turn ``N x H x W`` (gray) or ``N x H x W x C`` uint8 into float32 ``N x C x H x W`` in [0, 1].

    ``pad_to`` zero-pads gray 28 px Fashion-MNIST symmetrically to a square of that size.
    """
    if images.ndim == 3:
        images = images[:, None]
    else:
        images = images.transpose(0, 3, 1, 2)
    if pad_to is not None:
        ph, pw = pad_to - images.shape[2], pad_to - images.shape[3]
        images = np.pad(images, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
    return torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)


class FashionMNIST(Dataset):
    """Fashion-MNIST (Zalando, MIT licence): 60,000 train / 10,000 test gray images padded to 32x32."""

    name = "fashion-mnist"
    description = "Fashion-MNIST IDX files, padded to 32x32 gray (--data-dir, $BENCHKIT_DATA or Debian)"

    def candidates(self) -> list[Path]:
        """Folders searched, in order: --data-dir(/fashion-mnist), $BENCHKIT_DATA/fashion-mnist, Debian's."""
        return data_folders(self.name, self.data_dir) + [DEBIAN_FASHION_MNIST]

    def images(self, split: Split, limit: int | None = None) -> torch.Tensor:
        filename = FASHION_MNIST_FILES[split][0]
        for folder in self.candidates():
            for path in (folder / filename, folder / filename[:-3]):
                if path.is_file():
                    return to_tensor(read_idx_images(path)[:limit], pad_to=32)
        searched = ", ".join(str(p) for p in self.candidates())
        raise UserError(f"Fashion-MNIST file {filename} not found in {searched}: run "
                        "`benchkit data download fashion-mnist`, or `apt install dataset-fashion-mnist`")

    def download(self, dest: Path, base_url: str = FASHION_MNIST_URL) -> Path:
        """Fetch the train and test image files into ``dest`` and check their SHA-256."""
        for filename, sha256 in FASHION_MNIST_FILES.values():
            fetch(base_url + filename, dest / filename, lambda path, sha256=sha256: _gunzip_sha256(path) == sha256)
        return dest


def _gunzip_sha256(path: Path) -> str:
    try:
        with gzip.open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except (OSError, EOFError):
        return ""


class FashionMNISTMini(Dataset):
    """Embedded default: the first 512 Fashion-MNIST test images and 10,000 training images."""

    name = "fashion-mnist-mini"
    description = "embedded default: 512 test + 10,000 train Fashion-MNIST images, 32x32 gray, offline"
    models_from = "fashion-mnist"  # the shipped models were trained on all 60,000 training images

    def images(self, split: Split, limit: int | None = None) -> torch.Tensor:
        try:
            with np.load(MINI_FILE) as archive:
                return to_tensor(archive[split][:limit], pad_to=32)
        except (OSError, KeyError, ValueError) as exc:
            raise UserError(f"embedded dataset {MINI_FILE} is missing or corrupt ({exc}): "
                            "reinstall benchkit") from exc


class ImageFolder(Dataset):
    """Any folder of images, centre-cropped to a square and resized to ``size`` pixels.

    ``folder:PATH`` uses ``PATH/test`` and ``PATH/train`` if they exist; otherwise every image in
    ``PATH`` is a test image and there is no train split. Files are taken in sorted name order.
    """

    name = "folder"
    description = "folder:PATH of images (PATH/test, PATH/train if present), centre-cropped, resized"
    spec_option = "path"

    def __init__(self, path: str = "", size: int = 64, mode: str = "RGB", data_dir: str | None = None):
        super().__init__(data_dir)
        if not path:
            raise UserError("dataset 'folder' needs a path: use --datasets folder:PATH")
        if mode not in ("RGB", "L"):
            raise UserError(f"folder.mode must be RGB or L, not {mode!r}")
        self.path, self.size, self.mode = Path(path), size, mode

    def split_folder(self, split: Split) -> Path:
        if (self.path / "test").is_dir():
            return self.path / split
        if split == "test":
            return self.path
        raise UserError(f"folder dataset {self.path} has no train/ subfolder: add PATH/train and "
                        "PATH/test, or use methods that need no training data")

    def images(self, split: Split, limit: int | None = None) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        folder = self.split_folder(split)
        if not folder.is_dir():
            raise UserError(f"image folder {folder} does not exist: check the path")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
        if not files:
            raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
        arrays = []
        for file in files:
            try:
                with Image.open(file) as image:
                    arrays.append(np.asarray(center_crop_resize(image.convert(self.mode), self.size)))
            except (OSError, UnidentifiedImageError) as exc:
                raise UserError(f"cannot read image {file} ({exc}): remove or replace it") from exc
        return to_tensor(np.stack(arrays))


def center_crop_resize(image, size: int):
    """Crop the largest centred square of a PIL image and resize it to ``size`` (bicubic)."""
    from PIL import Image

    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)


@hookimpl
def register_datasets(register):
    register(FashionMNIST)
    register(FashionMNISTMini)
    register(ImageFolder)
