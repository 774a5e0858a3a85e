"""Pretrained weights of the perceptual metrics: where they come from, where benchkit looks, how to get them.

benchkit defines the networks itself (:mod:`benchkit.builtins.nets.inception`,
:mod:`benchkit.builtins.nets.lpips`) and reads the published weights files, which are PyTorch state
dicts, with ``torch.load(weights_only=True)`` (tensors only: nothing is unpickled). Files are looked
for, in order, in ``--weights-dir``, ``$BENCHKIT_WEIGHTS``, ``~/.cache/benchkit/weights`` (where
``benchkit weights download NAME`` puts them) and torch hub's checkpoint folder
(``~/.cache/torch/hub/checkpoints``, where torchvision keeps the AlexNet and VGG files it downloaded).

Checksums: the LPIPS calibration files have their full SHA-256 here; the Inception, AlexNet and VGG
files are checked against the SHA-256 prefix in their published names (as ``torch.hub`` does). The
check runs at download and again whenever a run loads a file, so a file of other weights under a
published name (a random or fine-tuned network) stops the run before anything is written: scores
from it would be reported as the published metric's. A file's digest is computed once per
process, and kept beside the file (``FILE.sha256``, with its size and modification time) so that
the next process hashes it only if it changed.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from benchkit.datafiles import weights_dir as given_or_env_weights_dir
from benchkit.errors import UserError
from benchkit.files import atomic_write_text


@dataclass(frozen=True)
class WeightsFile:
    """A downloadable weights file: its name in benchkit, file name, URL and SHA-256 (or its prefix;
    empty where none is published). With ``files``, ``filename`` is a folder in Hugging Face's layout
    and ``url`` its base: ``files`` must be present, ``extras`` are fetched beside them when there."""

    name: str
    filename: str
    url: str
    sha256: str
    size: str
    used_by: str
    files: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()

    def present(self, folder: Path) -> bool:
        """Whether the file (or the folder with every required file) is in ``folder``."""
        if not self.files:
            return (folder / self.filename).is_file()
        return all((folder / self.filename / name).is_file() for name in self.files)

    def downloads(self) -> list[tuple[str, str]]:
        """(URL, path relative to the weights folder) of each file to fetch."""
        if not self.files:
            return [(self.url, self.filename)]
        return [(f"{self.url}/{name}", f"{self.filename}/{name}") for name in (*self.files, *self.extras)]


WEIGHTS = {w.name: w for w in (
    WeightsFile("inception-fid", "pt_inception-2015-12-05-6726825d.pth",
                "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                "pt_inception-2015-12-05-6726825d.pth", "6726825d", "92 MB", "fid, kid"),
    WeightsFile("alexnet", "alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                "7be5be79", "233 MB", "lpips-alex, known-lpips"),
    WeightsFile("vgg16", "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
                "397923af", "528 MB", "lpips-vgg"),
    WeightsFile("lpips-alex", "lpips-v0.1-alex.pth",
                "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/alex.pth",
                "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0", "6 kB",
                "lpips-alex, known-lpips"),
    WeightsFile("lpips-vgg", "lpips-v0.1-vgg.pth",
                "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/vgg.pth",
                "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868", "7 kB", "lpips-vgg"),
    WeightsFile("dinov2-large", "dinov2-large", "https://huggingface.co/facebook/dinov2-large/resolve/main", "",
                "1.2 GB", "fd-dinov2", files=("config.json", "model.safetensors")),
    WeightsFile("dinov2-vitl14", "dinov2_vitl14_pretrain.pth",
                "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth", "", "1.2 GB",
                "fd-dinov2"),
    WeightsFile("clip-vit-large-patch14", "clip-vit-large-patch14",
                "https://huggingface.co/openai/clip-vit-large-patch14/resolve/main", "", "1.7 GB", "clip-score",
                files=("config.json", "model.safetensors", "tokenizer_config.json"),
                extras=("preprocessor_config.json", "tokenizer.json", "vocab.json", "merges.txt",
                        "special_tokens_map.json")),
)}


def default_dir() -> Path:
    """Where ``benchkit weights download`` writes: ``$BENCHKIT_WEIGHTS``, else ``~/.cache/benchkit/weights``."""
    return given_or_env_weights_dir(None) or Path.home() / ".cache" / "benchkit" / "weights"


def search_dirs(weights_dir: Path | None) -> list[Path]:
    """The folders searched for weights files, in order (see the module docstring)."""
    folders = [weights_dir] if weights_dir else []
    folders += [default_dir(), Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" /
                "checkpoints"]
    return list(dict.fromkeys(folders))


def sha256_matches(path: Path, expected: str) -> bool:
    """Whether the file's SHA-256 (hex) starts with ``expected`` (a full digest or a published prefix)."""
    from benchkit.files import file_digest

    return (file_digest(path) or "").startswith(expected)


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read from ``PATH.sha256`` while the file's size and modification time are
    the ones recorded there; else computed (once per process) and recorded there, where writable."""
    from benchkit.files import file_digest

    stat = path.stat()
    sidecar = path.with_name(path.name + ".sha256")
    try:
        recorded = json.loads(sidecar.read_text())
        if recorded.get("size") == stat.st_size and recorded.get("mtime_ns") == stat.st_mtime_ns:
            return str(recorded["sha256"])
    except (OSError, ValueError, AttributeError, KeyError):
        pass
    digest = file_digest(path) or ""
    try:
        atomic_write_text(sidecar, json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}))
    except OSError:  # a read-only folder: hashed again by the next process
        pass
    return digest


def verified(name: str, path: Path) -> Path:
    """``path`` if its SHA-256 is the published one of weights ``name``; else a one-line UserError."""
    expected = WEIGHTS[name].sha256
    digest = file_sha256(path)
    if not digest.startswith(expected):
        raise UserError(f"weights file {path} has SHA-256 {digest[:16]}..., not the published {expected[:16]}...: "
                        f"it holds other weights than '{name}', whose scores it would be reported as; delete it and "
                        f"run `benchkit weights download {name}`")
    return path


def find_weights(name: str, weights_dir: Path | None) -> Path:
    """The path of weights file (or folder) ``name``; a missing one raises the one-line error saying
    how to get it and the exact path to put it at."""
    entry = WEIGHTS[name]
    for folder in search_dirs(weights_dir):
        if entry.present(folder):
            return folder / entry.filename
    searched = ", ".join(str(f) for f in search_dirs(weights_dir))
    what = f"the folder {entry.filename}/ with {', '.join(entry.files)}" if entry.files else entry.filename
    raise UserError(f"pretrained weights '{name}' ({what}, {entry.size}) not found in {searched}: run "
                    f"`benchkit weights download {name}` where there is internet, or put them at "
                    f"{search_dirs(weights_dir)[0] / entry.filename}")


def load_state_dict(name: str, weights_dir: Path | None) -> dict[str, torch.Tensor]:
    """Read weights file ``name``, checked against its published SHA-256, as a state dict of tensors
    (``weights_only``: nothing is unpickled)."""
    path = verified(name, find_weights(name, weights_dir))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or holding objects that are not tensors
        raise UserError(f"weights file {path} is unreadable ({type(exc).__name__}): delete it and run "
                        f"`benchkit weights download {name}`") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"weights file {path} is not a state dict of tensors: delete it and run "
                        f"`benchkit weights download {name}`")
    return state


def load_into(net: torch.nn.Module, state: dict[str, torch.Tensor], name: str, ignore: tuple[str, ...] = ()) -> None:
    """Load ``state`` into ``net``, naming the file's problem in one line when keys or shapes differ.
    Keys of ``state`` starting with one of ``ignore`` are left out."""
    state = {k: v for k, v in state.items() if not k.startswith(ignore)}
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"weights '{name}' do not fit benchkit's network ({str(exc).splitlines()[0]} ...): "
                        f"delete the file and run `benchkit weights download {name}`") from exc
