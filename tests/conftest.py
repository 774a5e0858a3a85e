"""Shared test helpers: in-process plugins that misbehave on purpose, and a small run config."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from reference_impls import usable_torchvision

import benchkit
from benchkit.plugin.interfaces import Dataset, MaskGenerator, Method
from benchkit.plugin.registry import Registry
from benchkit.run.runner import RunConfig

usable_torchvision()  # diffusers and transformers import torchvision, whose compiled part may not match this torch


class SpyMethod(Method):
    """Records every batch it is given, and fills holes with 0.5."""

    name = "spy"
    calls: list = []

    def inpaint(self, images, known):
        SpyMethod.calls.append((images.clone(), known.clone()))
        return torch.where(known, images, torch.full_like(images, 0.5))


class BrokenMethod(Method):
    name = "broken"

    def inpaint(self, images, known):
        raise RuntimeError("kaboom")


class NaNMethod(Method):
    name = "nan-out"

    def inpaint(self, images, known):
        return torch.full_like(images, float("nan"))


def _array_dataset(name, make):
    class ArrayDataset(Dataset):
        def images(self, split, limit=None):
            return make()[:limit]

    ArrayDataset.name = name
    return ArrayDataset


def _gray(n=8, size=16):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(1))


BAD_DATASETS = [
    _array_dataset("tiny", _gray),
    _array_dataset("nan-images", lambda: _gray().masked_fill(torch.rand(8, 1, 16, 16) < 0.1, float("nan"))),
    _array_dataset("big-values", lambda: _gray() * 255),
    _array_dataset("flat-shape", lambda: torch.rand(8, 16, 16)),
]


class FullMask(MaskGenerator):
    name = "nothing-missing"

    def known(self, height, width, *, index, rng):
        return np.ones((height, width), bool)


class EmptyMask(MaskGenerator):
    name = "all-missing"

    def known(self, height, width, *, index, rng):
        return np.zeros((height, width), bool)


class WrongShapeMask(MaskGenerator):
    name = "wrong-shape"

    def known(self, height, width, *, index, rng):
        return np.ones((height + 1, width), bool)


class TestPlugins:
    @benchkit.hookimpl
    def register_methods(self, register):
        for cls in (SpyMethod, BrokenMethod, NaNMethod):
            register(cls)

    @benchkit.hookimpl
    def register_datasets(self, register):
        for cls in BAD_DATASETS:
            register(cls)

    @benchkit.hookimpl
    def register_masks(self, register):
        for cls in (FullMask, EmptyMask, WrongShapeMask):
            register(cls)


@pytest.fixture
def registry():
    SpyMethod.calls.clear()
    return Registry(block_external=True, extra=[TestPlugins()])


@pytest.fixture
def config(tmp_path):
    return RunConfig(methods=["mean-fill"], datasets=["tiny"], masks=["center", "random"], n_images=8,
                     batch_size=4, out=tmp_path / "run")


def pytest_terminal_summary(terminalreporter):
    """Print how many distinct inputs the fuzz tests tried (tests/test_fuzz.py)."""
    import sys

    fuzz = sys.modules.get("test_fuzz")
    if fuzz is None or not fuzz.FUZZED:
        return
    counts = {name: len(inputs) for name, inputs in fuzz.FUZZED.items()}
    terminalreporter.write_line(f"fuzz: {sum(counts.values())} distinct inputs tried ("
                                + ", ".join(f"{name}: {n}" for name, n in counts.items()) + ")")
