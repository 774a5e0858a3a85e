"""The paper's datasets: ``celeba``, ``svhn`` and ``cars`` (Stanford Cars), read from their official files.

Each is looked for in ``--data-dir/NAME``, ``--data-dir``, then ``$BENCHKIT_DATA/NAME``. The first
use of a split decodes, crops and resizes its images once and caches them as a memory-mapped uint8
array (:mod:`benchkit.datafiles`), so later runs start in seconds. Images are RGB, ``size`` x
``size`` (64 by default, as in the paper), float32 in [0, 1].

Preprocessing, following Section 4 of Yeh et al. 2017:

* ``celeba``: the centred 108 x 108 square of each 178 x 218 aligned image (the face; the crop
  DCGAN's CelebA experiments use), resized to 64 x 64 with bicubic filtering. Test split: the
  official test partition (``2`` in ``list_eval_partition.txt``, 19,962 images; the paper held out
  about 2,000, so ``--n-images 2000`` matches its size); train split: partition ``0``.
* ``svhn``: the 32 x 32 cropped digits of ``train_32x32.mat`` / ``test_32x32.mat``, resized to
  64 x 64 (bicubic); the provided split (73,257 / 26,032 images).
* ``cars``: each image cropped to its bounding box from the devkit's annotations (1-based,
  inclusive pixel coordinates), resized to 64 x 64 without keeping the aspect ratio (bicubic);
  the provided split (8,144 / 8,041 images).
"""
from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from benchkit.datafiles import cached_array, data_folders, extract, fetch, source_fingerprint
from benchkit.errors import UserError
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import Dataset, Split

CELEBA_CROP = 108  # side of the centred square kept from each aligned CelebA image, px


def resize_rgb(image, size: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Crop a PIL image to ``box`` (left, top, right, bottom), resize to ``size`` x ``size``
    (bicubic) and return an ``H x W x 3`` uint8 array."""
    from PIL import Image

    image = image.convert("RGB")
    if box is not None:
        image = image.crop(box)
    return np.asarray(image.resize((size, size), Image.BICUBIC), dtype=np.uint8)


def read_image(path: Path):
    """Open an image file fully, with a one-line error naming a corrupt or missing one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image
    except (OSError, UnidentifiedImageError) as exc:
        raise UserError(f"cannot read image {path} ({exc}): replace it from the official files") from exc


def celeba_box(image) -> tuple[int, int, int, int]:
    """The centred ``CELEBA_CROP``-px square of an image (smaller if the image is), as a PIL box."""
    width, height = image.size
    side = min(CELEBA_CROP, width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


class PreprocessedDataset(Dataset):
    """Base of datasets read from official files and cached as uint8 arrays.

    Subclasses give ``required`` (paths that must exist in the dataset folder), ``how_to_get`` (a
    sentence for the error when they do not), ``sources(folder, split)`` (files the cache depends
    on) and ``build(folder, split)`` (an ``N x H x W x 3`` uint8 array). ``downloads`` lists
    ``(file name, URL, MD5)`` for :meth:`download`; archives among them are unpacked.
    """

    required: tuple[str, ...] = ()
    how_to_get: str = ""
    downloads: tuple[tuple[str, str, str], ...] = ()

    def __init__(self, size: Literal[32, 64, 128] = 64, data_dir: str | None = None) -> None:
        super().__init__(data_dir)
        self.size = size

    def folder(self) -> Path:
        """The first searched folder that holds every required file."""
        searched = data_folders(self.name, self.data_dir)
        for folder in searched:
            if all(any((folder / alt).exists() for alt in need.split("|")) for need in self.required):
                return folder
        where = ", ".join(str(f) for f in searched) or "nowhere (no --data-dir, no $BENCHKIT_DATA)"
        raise UserError(f"dataset '{self.name}' not found (searched {where}): {self.how_to_get}")

    @abstractmethod
    def sources(self, folder: Path, split: Split) -> list[Path]:
        """The files a split is built from (their fingerprint keys the cached array)."""

    @abstractmethod
    def build(self, folder: Path, split: Split) -> np.ndarray:
        """The split's images as ``N x H x W x C`` uint8, built from the source files."""

    def images_uint8(self, split: Split, limit: int | None = None) -> torch.Tensor:
        folder = self.folder()
        key = {"dataset": self.name, "split": split, "size": self.size, "version": 1,
               "sources": source_fingerprint(self.sources(folder, split))}
        array = cached_array(key, lambda: self.build(folder, split))
        chosen = np.array(array[:limit])  # a copy: the cache stays read-only
        return torch.from_numpy(chosen).permute(0, 3, 1, 2).contiguous()

    def images(self, split: Split, limit: int | None = None) -> torch.Tensor:
        return self.images_uint8(split, limit).float().div_(255.0)

    def download(self, dest: Path) -> Path:
        """Fetch every official file into ``dest``, check its MD5, and unpack archives."""
        if not self.downloads:
            return super().download(dest)
        for filename, url, md5 in self.downloads:
            path = fetch(url, dest / filename, md5)
            if filename.endswith((".zip", ".tgz", ".tar", ".tar.gz")):
                extract(path, dest)
        return dest

    def _resize_all(self, images: list, boxes, split: Split) -> np.ndarray:
        """Crop and resize each image (a file path or a PIL image) into one uint8 array.

        ``boxes`` is None (no crop), a list of boxes, or a function of the PIL image giving its box.
        """
        out = np.empty((len(images), self.size, self.size, 3), np.uint8)
        for i, image in enumerate(tqdm(images, desc=f"{self.name} {split}: preparing cache", unit="img",
                                       disable=len(images) < 500)):
            image = read_image(image) if isinstance(image, Path) else image
            box = boxes(image) if callable(boxes) else boxes[i] if boxes else None
            out[i] = resize_rgb(image, self.size, box)
        return out


class CelebA(PreprocessedDataset):
    """CelebA aligned faces (Liu et al. 2015), centre-cropped to 108 px and resized to 64."""

    name = "celeba"
    description = "CelebA img_align_celeba + list_eval_partition.txt, 108 px centre crop -> 64x64 RGB"
    required = ("img_align_celeba|Img/img_align_celeba", "list_eval_partition.txt|Eval/list_eval_partition.txt")
    how_to_get = ("put img_align_celeba/ and list_eval_partition.txt in DATA/celeba (--data-dir DATA or "
                  "$BENCHKIT_DATA), or run `benchkit data download celeba`")
    _drive = "https://drive.usercontent.google.com/download?export=download&confirm=t&id="
    downloads = (("img_align_celeba.zip", _drive + "0B7EVK8r0v71pZjFTYXZWM3FlRnM", "00d2c5bc6d35e252742224ab0c1e8fcb"),
                 ("list_eval_partition.txt", _drive + "0B7EVK8r0v71pY0NSMzRuSXJEVkk",
                  "d32c9cbf5e040fd4025c592c306e6668"))
    PARTITIONS = {"train": "0", "test": "2"}

    @staticmethod
    def _paths(folder: Path) -> tuple[Path, Path]:
        """The partition file and the image folder, in the flat or the official Eval/ Img/ layout."""
        def first(*names: str) -> Path:
            return next((folder / n for n in names if (folder / n).exists()), folder / names[0])

        return (first("list_eval_partition.txt", "Eval/list_eval_partition.txt"),
                first("img_align_celeba", "Img/img_align_celeba"))

    def _files(self, folder: Path, split: Split) -> list[Path]:
        partition, images = self._paths(folder)
        names = []
        for number, line in enumerate(partition.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in "012":
                raise UserError(f"{partition} line {number} is not 'FILE.jpg 0|1|2': download it again")
            if parts[1] == self.PARTITIONS[split]:
                names.append(images / parts[0])
        if not names:
            raise UserError(f"{partition} lists no {split} image: download it again")
        return names

    def sources(self, folder, split):
        return list(self._paths(folder))

    def build(self, folder, split):
        return self._resize_all(self._files(folder, split), celeba_box, split)


class SVHN(PreprocessedDataset):
    """Street View House Numbers, cropped digits (Netzer et al. 2011), resized to 64 px."""

    name = "svhn"
    description = "SVHN train_32x32.mat / test_32x32.mat, resized to 64x64 RGB, provided split"
    required = ("train_32x32.mat|test_32x32.mat",)
    how_to_get = ("put train_32x32.mat and test_32x32.mat in DATA/svhn (--data-dir DATA or $BENCHKIT_DATA), "
                  "or run `benchkit data download svhn`")
    downloads = (("train_32x32.mat", "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
                  "e26dedcc434d2e4c54c9b2d4a06d8373"),
                 ("test_32x32.mat", "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
                  "eb5a983be6a315427106f1b164d9cef3"))

    def sources(self, folder, split):
        path = folder / f"{split}_32x32.mat"
        if not path.is_file():
            raise UserError(f"SVHN file {path} is missing: {self.how_to_get}")
        return [path]

    def build(self, folder, split):
        from PIL import Image
        from scipy.io import loadmat

        path = folder / f"{split}_32x32.mat"
        try:
            digits = loadmat(path, variable_names=["X"])["X"]  # 32 x 32 x 3 x N uint8
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"cannot read {path} ({exc}): download it again") from exc
        if digits.ndim != 4 or digits.shape[:3] != (32, 32, 3) or digits.dtype != np.uint8:
            raise UserError(f"{path} holds X of shape {digits.shape}, not 32x32x3xN uint8: download it again")
        return self._resize_all([Image.fromarray(digits[..., i]) for i in range(digits.shape[3])], None, split)

    def labels(self, split: Split, limit: int | None = None) -> torch.Tensor:
        """The digit of each image, 0-9 (the files' ``y`` holds 10 for the digit 0), int64."""
        from scipy.io import loadmat

        path = self.sources(self.folder(), split)[0]
        try:
            digits = np.asarray(loadmat(path, variable_names=["y"])["y"]).reshape(-1).astype(np.int64)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"cannot read the labels y of {path} ({exc}): download it again") from exc
        if digits.size and (digits.min() < 1 or digits.max() > 10):
            raise UserError(f"{path} holds labels outside 1-10: download it again")
        return torch.from_numpy(digits % 10)[:limit]


class StanfordCars(PreprocessedDataset):
    """Stanford Cars (Krause et al. 2013), cropped to the provided bounding boxes, resized to 64 px."""

    name = "cars"
    description = "Stanford Cars cars_train/, cars_test/ + devkit annotations, bbox crop -> 64x64 RGB"
    required = ("cars_train|cars_test", "devkit/cars_train_annos.mat|devkit/cars_test_annos.mat")
    how_to_get = ("put cars_train/, cars_test/ and devkit/ (car_devkit.tgz unpacked) in DATA/cars "
                  "(--data-dir DATA or $BENCHKIT_DATA), or run `benchkit data download cars`")
    downloads = (("car_devkit.tgz", "https://ai.stanford.edu/~jkrause/cars/car_devkit.tgz",
                  "c3b158d763b6e2245038c8ad08e45376"),
                 ("cars_train.tgz", "https://ai.stanford.edu/~jkrause/car196/cars_train.tgz",
                  "065e5b463ae28d29e77c1b4b166cfe61"),
                 ("cars_test.tgz", "https://ai.stanford.edu/~jkrause/car196/cars_test.tgz",
                  "4ce7ebf6a94d07f1952d94dd34c4d501"))

    def _annotations(self, folder: Path, split: Split) -> Path:
        path = folder / "devkit" / f"cars_{split}_annos.mat"
        if not path.is_file():
            raise UserError(f"Stanford Cars annotations {path} are missing: {self.how_to_get}")
        return path

    def sources(self, folder, split):
        return [self._annotations(folder, split), folder / f"cars_{split}"]

    def build(self, folder, split):
        from scipy.io import loadmat

        path = self._annotations(folder, split)
        try:
            annotations = np.atleast_1d(loadmat(path, squeeze_me=True)["annotations"])
            boxes = [tuple(int(a[f]) for f in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")) for a in annotations]
            files = [folder / f"cars_{split}" / str(a["fname"]) for a in annotations]
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise UserError(f"cannot read bounding boxes from {path} ({exc}): unpack car_devkit.tgz again") from exc
        # 1-based inclusive (x1, y1, x2, y2) -> PIL's 0-based (left, top, right exclusive, bottom exclusive)
        return self._resize_all(files, [(x1 - 1, y1 - 1, x2, y2) for x1, y1, x2, y2 in boxes], split)

    def labels(self, split: Split, limit: int | None = None) -> torch.Tensor | None:
        """The car model of each image, 0-195 (the annotations' 1-based ``class``), int64; None where
        the annotations carry no classes (the devkit's original test annotations have none: put
        ``cars_test_annos_withlabels.mat`` in ``devkit/`` under the name ``cars_test_annos.mat``)."""
        from scipy.io import loadmat

        path = self._annotations(self.folder(), split)
        try:
            annotations = np.atleast_1d(loadmat(path, squeeze_me=True)["annotations"])
            if "class" not in (annotations.dtype.names or ()):
                return None
            classes = np.array([int(a["class"]) for a in annotations], np.int64)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise UserError(f"cannot read classes from {path} ({exc}): unpack car_devkit.tgz again") from exc
        return torch.from_numpy(classes - 1)[:limit]


@hookimpl
def register_datasets(register):
    register(CelebA)
    register(SVHN)
    register(StanfordCars)
