"""celeba, svhn and cars on tiny fixtures written in each dataset's official file format."""
import hashlib
import io
import json
import os
import re
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from benchkit.builtins.datasets.paper import SVHN, CelebA, StanfordCars
from benchkit.cli import main
from benchkit.datafiles import extract, fetch
from benchkit.errors import UserError
from benchkit.plugin.registry import Registry

BLUE, WHITE = (0, 0, 255), (255, 255, 255)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BENCHKIT_DATA", raising=False)


def _jpeg(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=100, subsampling=0)


def _face(level):
    """A 178x218 'aligned face': blue outside the centred 108 px square; inside, a white top-left
    quadrant and grey ``level`` elsewhere."""
    image = np.zeros((218, 178, 3), np.uint8)
    image[:] = BLUE
    top, left = (218 - 108) // 2, (178 - 108) // 2
    image[top:top + 108, left:left + 108] = level
    image[top:top + 54, left:left + 54] = WHITE
    return image


def write_celeba(root):
    partitions = ["0", "0", "1", "2", "2", "0"]
    folder = root / "celeba"
    for i, _ in enumerate(partitions):
        _jpeg(folder / "img_align_celeba" / f"{i + 1:06d}.jpg", _face(40 * i))
    (folder / "list_eval_partition.txt").write_text(
        "".join(f"{i + 1:06d}.jpg {p}\n" for i, p in enumerate(partitions)))
    return folder


def test_celeba_crop_split_and_cache(tmp_path, monkeypatch):
    write_celeba(tmp_path)
    dataset = CelebA(data_dir=str(tmp_path))
    test = dataset.images("test")
    assert test.shape == (2, 3, 64, 64) and test.dtype == torch.float32
    # official test partition (2): images 4 and 5, in file order, so grey levels 120 and 160
    np.testing.assert_allclose(test[:, :, 48, 48].mul(255).numpy(), [[120] * 3, [160] * 3], atol=6)
    assert (test[:, :, 4:28, 4:28] > 0.95).all(), "the white quadrant is the crop's top-left quarter"
    blue = (test[:, 2] - test[:, 0] > 0.5)
    assert not blue.any(), "nothing outside the centred 108 px square survives the crop"
    assert len(dataset.images("train")) == 3  # partition 0; the validation image 3 is in neither
    cached = list((tmp_path / "cache").glob("celeba-test-64-*.npy"))
    assert len(cached) == 1
    monkeypatch.setattr(CelebA, "build", lambda *a: pytest.fail("the cache should have been used"))
    torch.testing.assert_close(CelebA(data_dir=str(tmp_path)).images("test", limit=1), test[:1])


def test_celeba_cache_rebuilds_when_the_partition_changes(tmp_path):
    folder = write_celeba(tmp_path)
    assert len(CelebA(data_dir=str(tmp_path)).images("test")) == 2
    (folder / "list_eval_partition.txt").write_text("".join(f"{i:06d}.jpg 2\n" for i in range(1, 7)))
    assert len(CelebA(data_dir=str(tmp_path)).images("test")) == 6


def test_svhn_reads_mat_and_resizes_to_64(tmp_path):
    digits = np.zeros((32, 32, 3, 3), np.uint8)
    digits[:, 16:, :, 0] = 200  # image 0: dark left half, bright right half
    digits[..., 1] = 77
    digits[..., 2] = np.arange(3, dtype=np.uint8) * 50  # image 2: a different level per channel
    folder = tmp_path / "svhn"
    folder.mkdir()
    savemat(folder / "test_32x32.mat", {"X": digits, "y": np.array([[1], [2], [3]], np.uint8)})
    images = SVHN(data_dir=str(tmp_path)).images("test")
    assert images.shape == (3, 3, 64, 64)
    assert images[0, :, :, :28].max() < 0.02 and images[0, :, :, 36:].min() > 200 / 255 - 0.02
    torch.testing.assert_close(images[1], torch.full((3, 64, 64), 77 / 255))
    torch.testing.assert_close(images[2, :, 10, 10], torch.tensor([0, 50, 100]) / 255)
    with pytest.raises(UserError, match="train_32x32.mat is missing"):
        SVHN(data_dir=str(tmp_path)).images("train")
    assert SVHN(data_dir=str(tmp_path)).labels("test").tolist() == [1, 2, 3]
    savemat(folder / "test_32x32.mat", {"X": digits, "y": np.array([[10], [9], [1]], np.uint8)})
    assert SVHN(data_dir=str(tmp_path)).labels("test").tolist() == [0, 9, 1]  # 10 stands for the digit 0


def write_cars(root):
    folder = root / "cars"
    boxes = {"test": [(11, 21, 60, 70), (1, 1, 100, 50)], "train": [(5, 5, 30, 30)]}
    for split, split_boxes in boxes.items():
        records = []
        for i, (x1, y1, x2, y2) in enumerate(split_boxes):
            image = np.zeros((90, 120, 3), np.uint8)
            image[y1 - 1:y2, x1 - 1:x2] = 60 + 100 * i  # 1-based inclusive box, black around it
            _jpeg(folder / f"cars_{split}" / f"{i + 1:05d}.jpg", image)
            records.append((x1, y1, x2, y2, 3 + 190 * i, f"{i + 1:05d}.jpg"))
        dtype = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"),
                 ("fname", "O")]
        annotations = np.array([tuple(np.array([[v]]) if isinstance(v, int) else v for v in r) for r in records],
                               dtype=dtype)[None]
        (folder / "devkit").mkdir(parents=True, exist_ok=True)
        savemat(folder / "devkit" / f"cars_{split}_annos.mat", {"annotations": annotations})
    return folder


def test_cars_crops_to_the_bounding_box(tmp_path):
    write_cars(tmp_path)
    test = StanfordCars(data_dir=str(tmp_path)).images("test")
    assert test.shape == (2, 3, 64, 64)
    # the box holds one flat level; a box off by one pixel would pull black into the edge rows
    np.testing.assert_allclose(test[0].mul(255).numpy(), 60, atol=8)
    np.testing.assert_allclose(test[1].mul(255).numpy(), 160, atol=8)
    assert len(StanfordCars(data_dir=str(tmp_path)).images("train")) == 1
    assert StanfordCars(data_dir=str(tmp_path)).labels("test").tolist() == [2, 192]  # 1-based classes 3, 193


def test_missing_dataset_says_how_to_get_it(tmp_path):
    for cls in (CelebA, SVHN, StanfordCars):
        with pytest.raises(UserError, match=f"benchkit data download {cls.name}"):
            cls(data_dir=str(tmp_path)).images("test")


def test_registered_with_list(capsys):
    assert {"celeba", "svhn", "cars"} <= set(Registry(block_external=True).names("dataset"))
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^dataset +{name} ", out, re.M) for name in ("cars", "celeba", "svhn"))


def test_download_checks_md5_and_unpacks(tmp_path, monkeypatch):
    source = write_celeba(tmp_path / "official")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / "img_align_celeba.zip", "w") as zf:
        for path in sorted((source / "img_align_celeba").iterdir()):
            zf.write(path, f"img_align_celeba/{path.name}")
    (mirror / "list_eval_partition.txt").write_bytes((source / "list_eval_partition.txt").read_bytes())
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in mirror.iterdir()}
    files = tuple((name, (mirror / name).as_uri(), md5[name]) for name in md5)
    monkeypatch.setattr(CelebA, "downloads", files)
    dest = tmp_path / "data"
    assert main(["data", "download", "celeba", "--data-dir", str(dest)]) == 0
    assert len(CelebA(data_dir=str(dest)).images("test")) == 2
    bad = (("list_eval_partition.txt", (mirror / "list_eval_partition.txt").as_uri(), "0" * 32),)
    monkeypatch.setattr(CelebA, "downloads", bad)
    with pytest.raises(UserError, match="wrong MD5"):
        CelebA().download(tmp_path / "other")
    assert not list((tmp_path / "other").iterdir()), "no partial file is left behind"


def test_extract_refuses_members_outside_the_folder(tmp_path):
    archive = tmp_path / "evil.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(UserError, match="unsafe member"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_fetch_skips_a_file_already_verified(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"payload")
    assert fetch("file:///nonexistent", target, hashlib.md5(b"payload").hexdigest()) == target


@pytest.mark.parametrize("model", ["gan", "ce"])
def test_train_at_64px_on_the_celeba_fixture(tmp_path, model):
    write_celeba(tmp_path)
    out = tmp_path / "models"
    code = main(["train", model, "--dataset", "celeba", "--data-dir", str(tmp_path), "--epochs", "1",
                 "--batch-size", "2", "--out", str(out)])
    assert code == 0
    info = json.loads((out / f"{model}-celeba.json").read_text())
    assert (info["size"], info["channels"], info["images_seen"]) == (64, 3, 2)
    assert os.path.getsize(out / f"{model}-celeba.safetensors") > 0


def test_cars_test_annotations_without_classes_give_no_labels(tmp_path):
    folder = write_cars(tmp_path)
    path = folder / "devkit" / "cars_test_annos.mat"
    from scipy.io import loadmat

    annotations = loadmat(path)["annotations"]
    names = [n for n in annotations.dtype.names if n != "class"]  # as the devkit's original test file
    stripped = np.array([tuple(row[n] for n in names) for row in annotations[0]],
                        dtype=[(n, "O") for n in names])[None]
    savemat(path, {"annotations": stripped})
    assert StanfordCars(data_dir=str(tmp_path)).labels("test") is None
    assert StanfordCars(data_dir=str(tmp_path)).labels("train").tolist() == [2]
