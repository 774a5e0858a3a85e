"""Built-in datasets: ``fashion-mnist``, the embedded ``fashion-mnist-mini`` and ``folder``."""
from __future__ import annotations

import gzip
import hashlib
import io
import re
import warnings
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch

from benchkit.datafiles import data_folders, fetch, read_text_table
from benchkit.errors import UserError
from benchkit.files import folder_entries, is_folder
from benchkit.imaging import sixteen_bit_png_colour_type
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import Dataset, Split
from benchkit.plugin.options import FilePath, Range

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
MINI_FILE = Path(__file__).parents[1] / "data" / "fashion-mnist-mini.npz"
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# SHA-256 of the *decompressed* IDX files, so a recompressed mirror still verifies.
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "test": ("t10k-images-idx3-ubyte.gz", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
}
FASHION_MNIST_LABEL_FILES = {
    "train": ("train-labels-idx1-ubyte.gz", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "test": ("t10k-labels-idx1-ubyte.gz", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
PIL_ERRORS = (OSError, ValueError, SyntaxError)  # and UnidentifiedImageError, an OSError: Pillow's decoding errors
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def _read_idx(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as exc:
        raise UserError(f"cannot read IDX file {path} ({exc}): delete it and download it again") from exc


def read_idx_labels(path: Path) -> np.ndarray:
    """Read an IDX1 label file (optionally gzipped) into an ``N`` uint8 array of class indices."""
    data = _read_idx(path)
    if len(data) < 8 or data[:4] != b"\x00\x00\x08\x01":
        raise UserError(f"{path} is not an IDX1 uint8 label file: delete it and download it again")
    n = int.from_bytes(data[4:8], "big")
    if len(data) != 8 + n:
        raise UserError(f"{path} is truncated ({len(data)} bytes for {n} labels): download it again")
    return np.frombuffer(data, dtype=np.uint8, offset=8)


def read_idx_images(path: Path) -> np.ndarray:
    """Read an IDX3 image file (optionally gzipped) into an ``N x H x W`` uint8 array."""
    data = _read_idx(path)
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

    def _find(self, filename: str) -> Path:
        for folder in self.candidates():
            for path in (folder / filename, folder / filename[:-3]):
                if path.is_file():
                    return path
        searched = ", ".join(str(p) for p in self.candidates())
        raise UserError(f"Fashion-MNIST file {filename} not found in {searched}: run "
                        "`benchkit data download fashion-mnist`, or `apt install dataset-fashion-mnist`")

    def images(self, split: Split, limit: int | None = None) -> torch.Tensor:
        return to_tensor(read_idx_images(self._find(FASHION_MNIST_FILES[split][0]))[:limit], pad_to=32)

    def labels(self, split: Split, limit: int | None = None) -> torch.Tensor:
        """Class indices 0-9 (:data:`FASHION_MNIST_CLASSES`), int64."""
        labels = read_idx_labels(self._find(FASHION_MNIST_LABEL_FILES[split][0]))[:limit]
        return torch.from_numpy(labels.astype(np.int64))

    def download(self, dest: Path, base_url: str = FASHION_MNIST_URL) -> Path:
        """Fetch the train and test image and label files into ``dest`` and check their SHA-256."""
        for filename, sha256 in [*FASHION_MNIST_FILES.values(), *FASHION_MNIST_LABEL_FILES.values()]:
            fetch(base_url + filename, dest / filename, lambda path, sha256=sha256: _gunzip_sha256(path) == sha256)
        return dest


def _gunzip_sha256(path: Path) -> str:
    """SHA-256 of a gzip file's content (not of its bytes, which :func:`benchkit.files.file_digest`
    gives): the digests published for Fashion-MNIST are of the uncompressed files."""
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

    def labels(self, split: Split, limit: int | None = None) -> torch.Tensor:
        """Class indices 0-9 of the same images (Fashion-MNIST's labels), int64."""
        try:
            with np.load(MINI_FILE) as archive:
                return torch.from_numpy(archive[f"{split}_labels"][:limit].astype(np.int64))
        except (OSError, KeyError, ValueError) as exc:
            raise UserError(f"embedded dataset {MINI_FILE} is missing or corrupt ({exc}): "
                            "reinstall benchkit") from exc


class ImageFolder(Dataset):
    """Any folder of images, centre-cropped to a square and resized to ``size`` pixels.

    ``folder:PATH`` uses ``PATH/test`` and ``PATH/train`` if they exist; otherwise every image in
    ``PATH`` is a test image and there is no train split. Files are taken in sorted name order;
    hidden files (names starting with a dot, such as macOS ``._*`` sidecars) are skipped. EXIF
    orientation is applied. 8-bit images are scaled by 1/255; 16-bit gray images (PNG/TIFF mode
    ``I;16``) are read at full depth and scaled by 1/65535. Pillow reads 16-bit *colour* PNGs at
    8 bits: benchkit warns when it meets one.

    Each image is identified by the SHA-256 of its file's bytes (:meth:`image_keys`), which seeds
    its masks: the same photos get the same masks whatever the folder is called, where it lies, and
    which other files sit beside them. Bytes rather than decoded pixels, because JPEG decoders
    differ slightly between libjpeg builds, and bytes rather than file names and sizes, because a
    replaced image of the same format and dimensions (BMP, uncompressed TIFF) keeps its size.

    Parameters
    ----------
    path : str
        The image folder (given as ``folder:PATH``).
    size : int
        Side in pixels of the square images, at least 1 (SSIM needs 11).
    mode : str
        RGB (3 channels) or L (gray).
    """

    name = "folder"
    description = "folder:PATH of images (PATH/test, PATH/train if present), centre-cropped, resized"
    spec_option = "path"

    def __init__(self, path: FilePath = FilePath(""), size: Annotated[int, Range(1, 4096)] = 64,
                 mode: Literal["RGB", "L"] = "RGB", data_dir: str | None = None):
        super().__init__(data_dir)
        if not path:
            raise UserError("dataset 'folder' needs a path: use --datasets folder:PATH")
        self.path, self.size, self.mode = Path(path), size, mode
        self._keys: dict[tuple[str, int | None], list[str]] = {}
        self._warned: set[str] = set()  # splits whose skipped files were named in a warning

    def split_folder(self, split: Split) -> Path:
        if is_folder(self.path / "test"):
            return self.path / split
        if split == "test":
            return self.path
        raise UserError(f"folder dataset {self.path} has no train/ subfolder: add PATH/train and "
                        "PATH/test, or use methods that need no training data")

    def files(self, split: Split, limit: int | None = None) -> list[Path]:
        """The image files of a split, in name order, hidden files left out."""
        folder = self.split_folder(split)
        entries = folder_entries(folder, "image folder")
        try:
            files = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        except OSError as exc:
            raise UserError(f"cannot read image folder {folder} ({exc.strerror or exc}): check its permissions "
                            "(the folder needs read and execute rights)") from exc
        kept = set(files)
        skipped = [p.name for p in entries if p not in kept and p.name not in CAPTION_FILES]
        if skipped and split not in self._warned:
            self._warned.add(split)
            warnings.warn(f"{folder}: skipped {len(skipped)} entries that are not {'/'.join(sorted(IMAGE_SUFFIXES))} "
                          f"files ({', '.join(skipped[:3])}{' ...' if len(skipped) > 3 else ''}); folder: reads "
                          "only those types")
        if not files:
            raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
        return files[:limit]

    def check_files(self, split: Split) -> None:
        """Open the header of every image of ``split`` (no decode): unreadable, truncated-at-the-header
        or non-image files are found before a run writes anything."""
        from PIL import Image

        for file in self.files(split):
            try:
                with Image.open(file) as image:
                    image.size  # noqa: B018  (the header is parsed on open)
            except PIL_ERRORS as exc:
                raise UserError(f"cannot read image {file} ({_reason(exc)}): remove or replace it") from exc

    def images(self, split: Split, limit: int | None = None) -> torch.Tensor:
        from benchkit.imaging import decode_into

        files = self.files(split, limit)
        keys = [""] * len(files)
        out = torch.empty(len(files), 3 if self.mode == "RGB" else 1, self.size, self.size)  # filled in place

        def decode(row: int) -> np.ndarray:
            try:
                data = files[row].read_bytes()
            except OSError as exc:
                raise UserError(f"cannot read image {files[row]} ({exc.strerror or exc}): check its "
                                "permissions") from exc
            keys[row] = hashlib.sha256(data).hexdigest()
            return read_image(data, files[row], self.mode, self.size)

        decode_into(out, len(files), decode)
        self._keys[(split, limit)] = keys
        return out

    def captions(self, split: Split, limit: int | None = None) -> list[str] | None:
        """Captions from ``captions.csv`` (columns ``file,caption``) or ``captions.json`` (an object
        of file name: caption) beside the split's images; None when there is neither. Every image
        needs one."""
        folder = self.split_folder(split)
        found = [folder / name for name in CAPTION_FILES if (folder / name).is_file()]
        if not found:
            return None
        by_file = read_text_table(found[0], "file", "caption", "captions")
        files = self.files(split, limit)
        missing = [f.name for f in files if f.name not in by_file]
        if missing:
            raise UserError(f"{found[0]} has no caption for {missing[0]} ({len(missing)} images lack one): give "
                            "every image a caption")
        return [by_file[f.name] for f in files]

    def image_keys(self, split: Split, limit: int | None = None) -> list[str]:
        if (split, limit) not in self._keys:
            self._keys[(split, limit)] = [hashlib.sha256(f.read_bytes()).hexdigest()
                                          for f in self.files(split, limit)]
        return self._keys[(split, limit)]


CAPTION_FILES = ("captions.csv", "captions.json")


def read_image(data: bytes, file: Path, mode: str, size: int) -> np.ndarray:
    """Decode one image file's bytes to ``size x size x C`` pixels (C = 3 for RGB, 1 for L): uint8 for
    8-bit images, float32 in [0, 1] for 16- and 32-bit and float gray ones (read at full depth), as
    :func:`~benchkit.imaging.decode_into` takes them. EXIF orientation applied, centre-cropped,
    resized (bicubic)."""
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                opened.load()
                image = ImageOps.exif_transpose(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UserError(f"image {file} is too large to open safely ({exc}): downscale it or remove it") from exc
    except PIL_ERRORS as exc:
        raise UserError(f"cannot read image {file} ({_reason(exc)}): remove or replace it") from exc
    if image.mode.startswith("I") or image.mode == "F":
        gray = np.asarray(image, dtype=np.float64)
        scale = 1.0 if image.mode == "F" else 65535.0
        if image.mode != "F" and gray.size and gray.min() < 0:
            raise UserError(f"image {file} holds negative integers: save it as an 8- or 16-bit image")
        if image.mode != "F" and gray.size and gray.max() > 65535:  # beyond 16 bits: a 32-bit integer image
            scale = 4294967295.0
            warnings.warn(f"{file} is a 32-bit integer image: read with full scale 2**32 - 1 (save it as a 16-bit "
                          "image to choose the scaling yourself)")
        if image.mode == "F" and (not np.isfinite(gray).all() or gray.min() < 0 or gray.max() > 1):
            raise UserError(f"image {file} holds floats outside [0, 1]: save it as an 8- or 16-bit image")
        square = center_crop_resize(Image.fromarray(np.clip(gray / scale, 0, 1).astype(np.float32)), size)
        channel = np.clip(np.asarray(square, dtype=np.float32), 0, 1)[..., None]
        return np.repeat(channel, 3, axis=2) if mode == "RGB" else channel
    if sixteen_bit_png_colour_type(data) is not None:
        warnings.warn(f"{file} is a 16-bit colour PNG: Pillow reads it at 8 bits per channel")
    array = np.asarray(center_crop_resize(image.convert(mode), size))
    return array[..., None] if array.ndim == 2 else array


def _reason(exc: Exception) -> str:
    """Pillow's error without the in-memory buffer it names (``<_io.BytesIO object at 0x...>``)."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "not an image format Pillow can read"
    return re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "the file", str(exc)) or type(exc).__name__


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
