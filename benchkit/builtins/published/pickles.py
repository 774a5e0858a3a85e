"""Reading PyTorch checkpoints without running code from them.

A ``.ckpt`` or ``.pth`` file is a pickle: unpickling may call any function it names, which is how
StyleGAN2-ADA's persistence (MAT's ``.pkl``) rebuilds its networks from source code stored in the
file. benchkit reads every such file with ``torch.load(weights_only=True)``, whose unpickler builds
only tensors and plain containers. A training framework's objects in a checkpoint (PyTorch
Lightning's callback states, an OmegaConf configuration) are allowed only as named stand-ins: inert
records of their pickled state, so the framework is neither imported nor run. Any other global is
refused by name, before anything of it runs.
"""
from __future__ import annotations

import collections
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch

from benchkit.builtins.published.model import EXTERNAL_ROUTE
from benchkit.errors import UserError


class StandIn:
    """An object a checkpoint pickled from a training framework, kept as the state it pickled."""

    def __setstate__(self, state) -> None:
        self.state = state


def stand_ins(names: tuple[str, ...]) -> list[tuple[object, str]]:
    """One inert class per fully qualified name, for ``torch.serialization.safe_globals``."""
    return [(type(name.rsplit(".", 1)[1], (StandIn,), {"__module__": name.rsplit(".", 1)[0]}), name)
            for name in names]


# What a Lightning checkpoint pickles besides tensors: the callback states are keyed by the callback's
# class, the hyper-parameters hold the OmegaConf configuration (its nodes record their types: dict,
# list, int, typing.Any), and Lightning may wrap them in an AttributeDict.
LIGHTNING_GLOBALS = (
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "omegaconf.dictconfig.DictConfig", "omegaconf.listconfig.ListConfig",
    "omegaconf.base.ContainerMetadata", "omegaconf.base.Metadata",
    "omegaconf.nodes.AnyNode", "omegaconf.nodes.StringNode", "omegaconf.nodes.IntegerNode",
    "omegaconf.nodes.FloatNode", "omegaconf.nodes.BooleanNode",
)
PLAIN_TYPES = [collections.defaultdict, dict, list, int, float, str, bool, (object(), "typing.Any")]


LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # torch.save before 1.6


def is_pickle(path: Path) -> bool:
    """Whether a file is a bare pickle (MAT's and StyleGAN's ``.pkl``) rather than a PyTorch file (a
    zip archive, or the older format that begins with PyTorch's pickled magic number)."""
    with open(path, "rb") as handle:
        head = handle.read(len(LEGACY_TORCH_MAGIC))
    return head[:1] == b"\x80" and head != LEGACY_TORCH_MAGIC


def load_checkpoint(path: Path, allowed: tuple[str, ...] = (), mmap: bool = False) -> dict:
    """A checkpoint's contents, unpickled with only tensors, plain containers and stand-ins for the
    ``allowed`` names; anything else is a UserError naming the global that was refused. With
    ``mmap`` (PyTorch's zip format only) the tensors are mapped, not read: their keys, shapes and the
    file's globals are known without reading the weights' bytes."""
    if is_pickle(path):
        raise UserError(f"{path} is a bare pickle (as MAT's and StyleGAN's .pkl files are), whose loading runs code "
                        f"stored in it: benchkit never unpickles code; {EXTERNAL_ROUTE}")
    try:
        with torch.serialization.safe_globals(stand_ins(allowed) + PLAIN_TYPES), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols: the refusal below says what matters
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = f"the global {found.group(1)}" if found else "an object benchkit does not read"
        raise UserError(f"{path} pickles {what}, which would run code when loaded: benchkit never unpickles code; "
                        f"{EXTERNAL_ROUTE}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{path} is not a PyTorch checkpoint ({str(exc).splitlines()[0][:100]}): check the file") \
            from None
    if not isinstance(data, dict):
        raise UserError(f"{path} holds a {type(data).__name__}, not a checkpoint dictionary: check the file")
    return data
