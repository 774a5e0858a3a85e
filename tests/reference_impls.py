"""Import the reference implementations the perceptual-metric tests compare against.

``lpips`` (Zhang et al.'s package) and ``pytorch_fid`` (Seitzer's port of TensorFlow's FID) build
their networks from ``torchvision.models``. The torchvision wheels on PyPI are built for their own
torch release, and their compiled ops fail to load beside this project's CPU torch; the model
definitions are pure Python, so when the compiled part fails, ``torchvision`` is imported as a bare
package (its ``__init__``, which loads the ops, is skipped) and only ``torchvision.models`` is used.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
import types

import pytest


def _torchvision_models() -> None:
    if "torchvision.models" in sys.modules:
        return
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed (the README's test command installs it)")
    usable_torchvision()
    importlib.import_module("torchvision.models")


def usable_torchvision() -> None:
    """Where torchvision is installed but its compiled part fails beside this torch, replace it by its
    pure-Python package, so that libraries that import it (transformers) still import."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or "torchvision" in sys.modules:
        return
    try:
        importlib.import_module("torchvision")
    except Exception:  # its compiled ops do not match this torch: use the pure-Python model definitions
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        package = types.ModuleType("torchvision")
        package.__spec__ = spec  # libraries that look torchvision up later (diffusers) find a spec
        package.__path__ = [os.path.dirname(spec.origin)]
        package.__version__ = importlib.metadata.version("torchvision")
        sys.modules["torchvision"] = package


def reference(module: str):
    """``lpips`` or ``pytorch_fid.inception``, importable beside this torch (skips if not installed)."""
    top = module.split(".")[0]
    if importlib.util.find_spec(top) is None:
        pytest.skip(f"{top} is not installed (the README's test command installs it)")
    _torchvision_models()
    return importlib.import_module(module)
