"""Model files: weights as ``NAME.safetensors`` beside ``NAME.json`` saying how they were trained.

Nothing here unpickles: weights are safetensors, and training state is loaded with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from benchkit.errors import UserError
from benchkit.files import atomic_write_text, replacing


def save_model(path: Path, tensors: dict[str, torch.Tensor], info: dict) -> None:
    """Write ``path`` (.safetensors) and its .json atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    atomic_write_text(path.with_suffix(".json"), json.dumps(info, indent=2, sort_keys=True))


def load_model(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint and its JSON; raise UserError naming the file if either is unusable.

    Floating-point tensors come back as float32 whatever precision they were stored in (shipped
    models may be stored in float16 to halve their size, see :func:`slim_model`).
    """
    info_path = path.with_suffix(".json")
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        tensors = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
        info = json.loads(info_path.read_text())
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"checkpoint {path} or {info_path.name} is corrupt ({exc}): "
                        "delete it and train again") from exc
    return tensors, info


def state_dict(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors of one network in a checkpoint that holds several: those under ``PREFIX.``, with
    the prefix removed (``generator.net.0.weight`` -> ``net.0.weight`` for ``generator``)."""
    return {k.removeprefix(f"{prefix}."): v for k, v in tensors.items() if k.startswith(f"{prefix}.")}


def check_model_shape(path: Path, image_shape: tuple[int, int, int]) -> dict:
    """Read a checkpoint's JSON (not its weights) and check it was trained for ``C x H x W``
    images; returns the JSON. A missing, corrupt or mismatched file raises UserError."""
    info_path = Path(path).with_suffix(".json")
    try:
        info = json.loads(info_path.read_text())
        trained = (int(info["channels"]), int(info["size"]), int(info["size"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"checkpoint description {info_path} is missing or corrupt ({exc}): "
                        "train the model again") from exc
    if trained != tuple(image_shape):
        c, h, w = image_shape
        raise UserError(f"checkpoint {path} is for {trained[0]}x{trained[1]}x{trained[2]} images, not "
                        f"{c}x{h}x{w}: train one for this dataset, or resize the images (e.g. -o folder.size)")
    return info


def slim_model(source: Path, target: Path, keep: tuple[str, ...], dtype: torch.dtype = torch.float16) -> Path:
    """Write a smaller copy of a checkpoint for shipping: only the networks whose tensor names start
    with a prefix in ``keep`` (e.g. ``("encoder.",)``: a Context Encoder needs no discriminator at
    inference), floating-point tensors cast to ``dtype``. The JSON gains ``stored_dtype``,
    ``networks`` and ``slimmed_from``; everything else about how the model was trained is kept."""
    tensors, info = load_model(source)
    kept = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in tensors.items() if k.startswith(keep)}
    if not kept:
        raise UserError(f"checkpoint {source} has no tensor named {' or '.join(keep)}*: nothing to keep")
    info = {**info, "stored_dtype": str(dtype).removeprefix("torch."), "networks": [p.rstrip(".") for p in keep],
            "slimmed_from": source.name}
    save_model(target, kept, info)
    return target


def save_state(path: Path, state: dict) -> None:
    """Save a training state (tensors, numbers, strings only) atomically for resuming."""
    with replacing(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path) -> dict:
    """Load a training state with ``weights_only=True`` (no arbitrary unpickling)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise UserError(f"training state {path} is corrupt ({exc}): delete it to start over") from exc


MODELS_ENV = "BENCHKIT_MODELS"


def model_stem(kind: str, dataset: str) -> str:
    """File stem of the model of ``kind`` trained on ``dataset``: ``gan-fashion-mnist``; a dataset
    spec with other characters (``folder:/data/photos``) gets a hash, so two never share a file."""
    from benchkit.files import safe_name

    return f"{kind}-{safe_name(dataset)}"


def find_checkpoint(kind: str, dataset: str, models_dir: str | None, shipped: tuple[Path, ...] = (),
                    alias: str | None = None) -> Path:
    """Locate ``KIND-DATASET.safetensors``: in ``models_dir``, ``$BENCHKIT_MODELS``, ``./models``,
    then the folders a plugin ships; then the same for ``alias`` (a dataset whose models serve this
    one, such as fashion-mnist for its embedded subset). A missing one raises UserError naming the
    training command."""
    folders = [Path(models_dir)] if models_dir else []
    if os.environ.get(MODELS_ENV):
        folders.append(Path(os.environ[MODELS_ENV]))
    folders += [Path("models"), *shipped]
    name = model_stem(kind, dataset) + ".safetensors"
    for stem in (dataset, alias) if alias else (dataset,):
        for folder in folders:
            if (folder / (model_stem(kind, stem) + ".safetensors")).is_file():
                return folder / (model_stem(kind, stem) + ".safetensors")
    raise UserError(f"no {kind} checkpoint {name} for dataset '{dataset}': train one with "
                    f"`benchkit train {kind} --dataset {dataset}` (or pass --models-dir)")
