"""The plugin interfaces: Method, MaskGenerator, Metric (in ``benchkit.plugin.metric``), Dataset,
Trainer, Preset and Executor.

Conventions shared by every plugin
----------------------------------
* Images are ``float32`` torch tensors of shape ``N x C x H x W`` with values in ``[0, 1]``.
* Masks are ``bool`` tensors of shape ``N x 1 x H x W`` called ``known``: ``True`` where the
  pixel is observed, ``False`` where it is missing (the hole).
* A method only ever sees images whose missing pixels are zero. The runner composites
  ``known * y + (1 - known) * prediction`` before any metric is computed.

Plugins are classes. The registry instantiates them with keyword options given on the command
line (``-o gan.iterations=100``), so every option must be a keyword argument with a default.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch

from benchkit.plugin.base import Plugin
from benchkit.plugin.metric import Batch, ImageMetric, Metric, MetricContext, SetMetric  # noqa: F401  (the contract)

Split = Literal["train", "test"]


@dataclass
class MethodContext:
    """What the runner hands a method before it inpaints a dataset.

    Attributes
    ----------
    dataset : str
        Name of the dataset the method is about to inpaint.
    device : torch.device
        Where tensors given to ``inpaint`` live, and where the method should compute.
    image_shape : tuple of int
        ``(C, H, W)`` of the images.
    train_images : torch.Tensor or None
        The dataset's training split (``N x C x H x W`` float32 in [0, 1], on the CPU), given only to
        methods whose ``needs_train_data`` is true.
    checkpoint : pathlib.Path or None
        Path of the ``.safetensors`` checkpoint trained for this dataset, given only to methods whose
        ``needs_checkpoint`` names a model kind.
    seed : int
        Seed of the run; methods that draw random numbers derive their generator from it.
    masks : tuple of str
        Canonical specs of the run's masks (given to :meth:`Method.check`).
    image_ids : tuple of int
        Positions in the test split of the images the run inpaints (given to :meth:`Method.check`).
    dataset_digest : str or None
        Content digest of a folder-like dataset (None for named ones).
    captions : tuple of str or None
        The dataset's caption per test image (by position), where it has captions.
    image_keys : tuple of str or None
        Content key (SHA-256) of each of the run's images, by position, where the dataset gives
        them (folder datasets); None for named ones.
    """

    dataset: str
    device: torch.device
    image_shape: tuple[int, int, int]
    train_images: torch.Tensor | None = None
    checkpoint: Path | None = None
    seed: int = 0
    masks: tuple[str, ...] = ()
    image_ids: tuple[int, ...] = ()
    dataset_digest: str | None = None
    image_keys: tuple[str, ...] | None = None
    captions: tuple[str, ...] | None = None


class Method(Plugin, ABC):
    """An inpainting method.

    Class attributes
    ----------------
    needs_train_data : bool
        If true, ``setup`` receives the dataset's training split in ``context.train_images``.
    needs_checkpoint : str or None
        A model kind such as ``"gan"``: ``setup`` then receives the checkpoint trained for the
        dataset in ``context.checkpoint`` (the runner fails before starting if there is none).
    checkpoint_dirs : tuple of pathlib.Path
        Folders searched last for ``KIND-DATASET.safetensors`` (models a plugin ships).
    in_default_run : bool
        Whether ``benchkit run`` without ``--methods`` ("every available method") includes it;
        ``predictions`` does not (it needs a folder). ``--methods`` can always name it.
    slow : bool
        Whether the method takes long per image (seconds to minutes on a CPU): ``benchkit run``
        without ``--methods`` leaves it out with a note naming it; ``--methods`` can always name it.
    seconds_per_image : float or None
        Measured seconds per image with the default options on a 32 x 32 image on a 2-core CPU
        (shown by ``benchkit list``); None when not measured.
    speed : str
        A measured speed where ``seconds_per_image`` does not apply (a published model's, which
        depends on its files and the image size), shown by ``benchkit list``; empty when none.
    needs_cell : bool
        If true, ``inpaint`` also receives the keywords ``mask`` (the canonical mask spec of the
        cell) and ``image_ids`` (the batch's positions in the test split): for methods that read
        results made elsewhere rather than compute them.
    """

    needs_train_data: ClassVar[bool] = False
    needs_checkpoint: ClassVar[str | None] = None
    checkpoint_dirs: ClassVar[tuple[Path, ...]] = ()
    needs_cell: ClassVar[bool] = False
    in_default_run: ClassVar[bool] = True
    slow: ClassVar[bool] = False
    seconds_per_image: ClassVar[float | None] = None
    speed: ClassVar[str] = ""


    def check(self, context: MethodContext) -> None:
        """Cheap checks before anything of the run is written; raise ``UserError`` naming the fix.
        ``context.train_images`` is not filled in yet. The runner has already checked, from the
        checkpoint's JSON, that a method's checkpoint was trained for ``context.image_shape``.
        Default: nothing more."""

    def input_files(self, context: MethodContext, mask: str) -> list[Path]:
        """The files whose bytes this method reads for the cell of ``context.dataset`` and ``mask``
        (a folder of predictions made elsewhere), called after :meth:`check`. Their SHA-256 digests
        join the cell's task key, so a changed file redoes exactly the cells that read it. A
        checkpoint (``needs_checkpoint``) is keyed by the runner and need not be listed. Default: none."""
        return []

    def prompts(self, image_ids: list[int]) -> list[str] | None:
        """The text the method was given for each image (by position in the test split), for text
        metrics such as ``clip-score``; None (the default) for a method that takes no text, whose
        images are then scored against the dataset's captions."""
        return None

    def provenance(self) -> dict[str, str]:
        """What decides the method's output beyond its options and :meth:`input_files`, known
        without loading anything: for a published model, its loader, convention and the versions
        of the libraries that run it. Joins the cell's task key (a library upgrade redoes the
        cells) and is recorded in the cell's settings. Default: nothing."""
        return {}

    def model_card(self) -> dict[str, str]:
        """What the method found in its files, for ``benchkit info NAME:ARG`` and the run's manifest
        (architecture, parameter count, file digests, convention, size rule, library versions);
        may load the files. Default: nothing."""
        return {}

    def preferred_batch_size(self, device: torch.device, image_shape: tuple[int, int, int]) -> int:
        """Images per ``inpaint`` call under ``--batch-size auto`` (the default): what this method
        measured fastest on ``device`` for images of ``image_shape`` ``(C, H, W)``. Default 64."""
        return 64

    def setup(self, context: MethodContext) -> None:
        """Prepare for a dataset (load a model, index training images). Default: nothing."""

    @abstractmethod
    def inpaint(self, images: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Fill the missing pixels of a batch.

        Parameters
        ----------
        images : torch.Tensor
            ``N x C x H x W`` float32 in [0, 1]; missing pixels are 0.
        known : torch.Tensor
            ``N x 1 x H x W`` bool, True where the pixel is observed.

        Returns
        -------
        torch.Tensor
            ``N x C x H x W`` float32 in [0, 1]. Only the missing pixels are used.
        """

    @staticmethod
    def image_seeds(seed: int, keys) -> list[int]:
        """One seed per image, ``seed * 1_000_003 + key``: ``keys`` identify the images (their
        positions in the test split, the ``image_ids`` of a ``needs_cell`` method), so that an
        image's random draws depend on the run's seed and the image, not on its batch."""
        return [seed * 1_000_003 + int(key) for key in keys]


class MaskGenerator(Plugin, ABC):
    """Makes one ``known`` mask per image, deterministically from the generator it is given."""

    def source(self, index: int) -> str | None:
        """Where image ``index``'s mask comes from (a file name), for error messages; None if drawn."""
        return None

    def input_files(self) -> list[Path]:
        """The files whose bytes decide the masks (a folder of mask images): their SHA-256 digests
        join the task key of every cell that uses these masks. Default: none (drawn masks)."""
        return []

    @abstractmethod
    def known(self, height: int, width: int, *, index: int, rng: np.random.Generator) -> np.ndarray:
        """Return an ``H x W`` bool array, True where the pixel is observed.

        ``index`` is the image's position in the test split; ``rng`` is seeded by the runner from
        (run seed, dataset identity, mask name, image identity), so drawing from it is reproducible.
        """

    @staticmethod
    def legacy_state(rng: np.random.Generator) -> np.random.RandomState:
        """A numpy ``RandomState`` seeded by one draw from ``rng``: for procedures published with
        numpy's legacy random functions (LaMa's, MAT's), which it then follows call for call."""
        return np.random.RandomState(int(rng.integers(2**32)))


class Dataset(Plugin, ABC):
    """A source of images with a test split (inpainted) and a train split (for training models).

    ``models_from`` names another dataset whose trained checkpoints serve this one when it has none
    of its own (the embedded Fashion-MNIST subset uses models trained on all of Fashion-MNIST).
    """

    models_from: ClassVar[str | None] = None

    def __init__(self, data_dir: str | None = None) -> None:
        self.data_dir = Path(data_dir) if data_dir else None

    @abstractmethod
    def images(self, split: Split, limit: int | None = None) -> torch.Tensor:
        """Return the first ``limit`` images of a split (all if None).

        Returns ``N x C x H x W`` float32 in [0, 1]. Raises ``benchkit.errors.UserError`` naming
        how to get the data when it is not on disk.
        """

    def images_uint8(self, split: Split, limit: int | None = None) -> torch.Tensor:
        """The same images as ``uint8`` (0-255), ``N x C x H x W``: a quarter of the memory, for
        training on large sets. Default: :meth:`images` rounded; datasets that hold uint8 data
        override it to skip the float copy."""
        return self.images(split, limit).mul(255).round_().to(torch.uint8)

    def check_files(self, split: Split) -> None:
        """Cheaply check every file of ``split`` that a run will read (a header check, not a full
        decode), raising UserError naming the first bad one. Called before anything is written for
        splits that are read later (the train split of methods that learn from it); a fault that
        only a full decode finds fails its cell instead. Default: nothing to check."""

    def image_keys(self, split: Split, limit: int | None = None) -> list[str] | None:
        """Content identities (hex digests) of the images :meth:`images` returns, or None.

        Masks are seeded by (run seed, dataset identity, mask name, image): with keys, an image's
        identity is its key, so the same picture gets the same masks wherever it lies; with None
        (the default, for datasets with a fixed published content), the dataset's name and the
        image's position identify it.
        """
        return None

    def captions(self, split: Split, limit: int | None = None) -> list[str] | None:
        """A caption per image :meth:`images` returns, or None (the default) for a dataset without
        them. Captions reach text metrics (``clip-score``) and the prompts of methods that take text."""
        return None

    def labels(self, split: Split, limit: int | None = None) -> torch.Tensor | None:
        """Class indices (``N`` int64) of the images :meth:`images` returns, or None (the default)
        for a dataset without labels. Metrics with ``needs_labels`` run only where there are labels."""
        return None

    def download(self, dest: Path) -> Path:
        """Fetch the dataset's files into ``dest``; returns the folder. Optional."""
        from benchkit.errors import UserError

        raise UserError(f"dataset '{self.name}' has no download: put its files in place by hand")


@dataclass
class TrainConfig:
    """Settings of one training run that every trainer shares (recorded in the model's JSON). What
    belongs to one kind of model (its width, latent size, learning rate) is that trainer's own
    typed options, which the trainer records beside these."""

    dataset: str
    epochs: int = 25
    batch_size: int = 64
    seed: int = 0
    device: str = "cpu"
    max_minutes: float | None = None  # stop (resumably) after this much wall time
    checkpoint_minutes: float = 5.0


class Trainer(Plugin, ABC):
    """Trains a model for a dataset: ``benchkit train NAME --dataset D`` writes
    ``NAME-D.safetensors`` with ``NAME-D.json`` (how it was trained) into ``--out``.

    Options are keyword parameters of ``__init__`` (typed and range-checked like every plugin's),
    given as ``benchkit train NAME -o KEY=VALUE``. ``needs_masks``: ``train`` receives the mask
    generators named by ``--masks``. ``needs_labels``: ``train`` also receives ``labels=``, the
    training split's class indices (``N`` int64; datasets without labels are refused), and ``test=``,
    the test split's ``(uint8 images, labels)`` to report accuracy on (None where it is missing).
    """

    needs_masks: ClassVar[bool] = False
    needs_labels: ClassVar[bool] = False

    @abstractmethod
    def train(self, images: torch.Tensor, config, out: Path, command: str,
              masks: dict[str, MaskGenerator]) -> Path:
        """Train (or resume) on ``images`` (``N x C x H x W`` uint8 or float32 in [0, 1], the train
        split) with ``config`` (a :class:`TrainConfig`); return the model's path."""


@dataclass(frozen=True)
class Preset:
    """A named run configuration (``benchkit run --preset NAME``) and the published table it
    reproduces, if any. Registered as an instance through ``register_presets``.

    ``methods`` empty means every available method; ``metrics`` empty means those of the preset
    named ``default``, which holds what ``benchkit run`` does without flags; ``shown`` are the
    metrics printed as tables (empty: all of them). ``paper[dataset][mask]`` holds the published
    (left, right) values of ``metric`` for the method pair ``pair`` (None: no paper table);
    ``labels`` gives the paper's name of each dataset.
    """

    name: str
    description: str
    datasets: tuple[str, ...]
    masks: tuple[str, ...]
    methods: tuple[str, ...] = ()
    pair: tuple[str, str] | None = None
    metric: str = "psnr"
    paper: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    shown: tuple[str, ...] = ()


class Executor(Plugin, ABC):
    """Runs shard tasks, here or elsewhere, and yields their results as they finish (any order).

    Tasks are :class:`benchkit.run.tasks.ShardTask` (picklable, no tensors) and ``fn`` is a picklable
    module-level function (``benchkit.run.tasks.run_shard``). Workers compute; only the client writes.

    Class attributes
    ----------------
    local : bool
        Tasks run in this process: they may use in-process plugins and report progress per batch.
    default_shard_size : int or None
        Images per shard when ``--shard-size`` is not given; None means one shard per cell.
    """

    local: ClassVar[bool] = False
    default_shard_size: ClassVar[int | None] = 256

    @classmethod
    def add_arguments(cls, parser) -> None:
        """Add this executor's own flags to ``benchkit run`` (argparse), each named like one of its
        options (``--scheduler`` fills ``scheduler``). ``--workers`` and ``--shard-size`` are
        general flags already. Default: none."""

    def start(self) -> None:
        """Start or reach the workers; raise ``UserError`` (e.g. an unreachable scheduler). Called
        before anything of the run is written."""

    @abstractmethod
    def map(self, fn, tasks: list) -> Iterator:
        """Apply ``fn`` to every task; yield the results as they finish, each exactly once."""

    def release(self, fn, method: str) -> None:
        """Every shard of method ``method`` (a canonical spec) is done: run ``fn(method)`` (picklable,
        module level) on every worker that may keep it set up between shards, so that it is freed
        now. Default: nothing (a worker's own memory budget bounds what it keeps,
        :class:`benchkit.run.inputs.Inputs`)."""

    def close(self) -> None:
        """Release workers and connections."""
