"""``lama:DIR``: a LaMa model folder as advimman/lama publishes it (``big-lama/``).

The folder holds ``config.yaml`` (the training configuration; its ``generator`` section builds the
network) and ``models/best.ckpt``, a PyTorch Lightning checkpoint whose ``state_dict`` holds the
generator under ``generator.``, beside the discriminator and the losses' networks. The checkpoint is
read without unpickling code (:mod:`.pickles`); only the generator's weights are kept, loaded
strictly. LaMa's ``bin/predict.py`` convention: the input is ``cat(image * (1 - mask), mask)`` with
the image in [0, 1] and 1 = hole (``training_model.concat_mask``), sides padded to a multiple of 8 by
symmetric padding and cropped after; the network's output is the raw prediction (LaMa itself pastes
it into the hole, and benchkit composites it the same way).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import torch

from benchkit.builtins.nets.ffc import ACTIVATIONS, FFCResNetGenerator
from benchkit.builtins.published.convention import Convention
from benchkit.builtins.published.model import EXTERNAL_ROUTE, PublishedModel, parameter_count
from benchkit.builtins.published.pickles import LIGHTNING_GLOBALS, load_checkpoint
from benchkit.errors import UserError
from benchkit.files import is_folder
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.options import FilePath, Range

GENERATOR_OPTIONS = {"kind", "input_nc", "output_nc", "ngf", "n_downsampling", "n_blocks", "add_out_act",
                     "max_features", "init_conv_kwargs", "downsample_conv_kwargs", "resnet_conv_kwargs"}
FFC_OPTIONS = {"ratio_gin", "ratio_gout", "enable_lfu"}
OTHER_KINDS = {"pix2pixhd_multidilated": "lama-regular", "pix2pixhd_global": "the pix2pixHD baselines"}


class LamaInpainter(PublishedModel):
    """A LaMa model folder (``lama:DIR``): ``config.yaml`` and ``models/*.ckpt``.

    Parameters
    ----------
    folder : str
        The model folder (given after ``lama:``), as LaMa publishes it (``big-lama/``).
    checkpoint : str
        The checkpoint file in ``models/`` (default ``best.ckpt``, or the folder's only ``.ckpt``).
    name : str or None
        How the rows read.
    multiple : int
        Sides are made multiples of this (LaMa: 8).
    strategy : str
        How: ``pad`` (symmetric, cropped after, as LaMa predicts), ``resize`` (bicubic), or ``crop``
        (a window around each hole, padded; IOPaint's crop strategy).
    margin : int
        With ``strategy=crop``: pixels of context kept around each hole (IOPaint's default 128).
    dtype : str
        ``float32`` (LaMa's own), or ``bfloat16`` autocast (faster where the processor has bf16
        arithmetic; the Fourier transforms stay float32; the outputs differ slightly).
    """

    name = "lama"
    description = "a LaMa model folder (big-lama/: config.yaml + models/best.ckpt), read without unpickling code"
    spec_option = "folder"
    speed = "big-lama: 0.35 at 256 px, 1.7 at 512 (float32; benchmarks/models.py)"
    requires = ("yaml",)
    install_hint = "pip install 'benchkit[lama]'"

    def __init__(self, folder: FilePath | None = None, checkpoint: str = "", name: str | None = None,
                 multiple: Annotated[int, Range(1, 1024)] = 8, strategy: Literal["pad", "resize", "crop"] = "pad",
                 margin: Annotated[int, Range(1, 4096)] = 128,
                 dtype: Literal["float32", "bfloat16"] = "float32") -> None:
        if not folder:
            raise UserError("method 'lama' needs a folder: --methods lama:big-lama/")
        self.bfloat16 = dtype == "bfloat16"
        if not is_folder(Path(folder)):
            raise UserError(f"LaMa folder {folder} does not exist: give the folder that holds config.yaml and models/")
        self.folder = Path(folder)
        self.files = [self.folder / "config.yaml", self.folder / "models" / (checkpoint or _checkpoint(self.folder))]
        self.convention = Convention("hole", "unit", multiple, strategy, margin=margin)

    def checked(self, device: torch.device) -> tuple[FFCResNetGenerator, dict[str, torch.Tensor]]:
        """The generator ``config.yaml`` describes, on ``device``, and the checkpoint's weights for
        it, checked key by key and shape by shape. On the meta device nothing is computed and the
        weights are memory-mapped, not read: every refusal without reading the weights' bytes."""
        config = read_config(self.files[0])
        with torch.device(device):
            generator = build_generator(config.get("generator"), self.files[0])
        self.concat_mask = bool((config.get("training_model") or {}).get("concat_mask", True))
        state = load_checkpoint(self.files[1], LIGHTNING_GLOBALS, mmap=device.type == "meta").get("state_dict")
        if not isinstance(state, dict):
            raise UserError(f"{self.files[1]} has no state_dict: is it a LaMa training checkpoint?")
        weights = {key[len("generator."):]: value for key, value in state.items() if key.startswith("generator.")}
        expected = {key: tuple(value.shape) for key, value in generator.state_dict().items()}
        wrong = sorted(set(expected) ^ set(weights)) + [k for k in expected if k in weights and
                                                       tuple(weights[k].shape) != expected[k]]
        if wrong:
            raise UserError(f"{self.files[1]}'s generator does not match config.yaml's (first mismatched key "
                            f"'generator.{wrong[0]}'): use the config.yaml the checkpoint was trained with")
        return generator, weights

    def verify(self) -> None:
        self.checked(torch.device("meta"))

    def load(self, device: torch.device) -> None:
        generator, weights = self.checked(torch.device("cpu"))
        generator.load_state_dict(weights, strict=True)
        self.model = generator.to(device).eval()

    def preferred_batch_size(self, device: torch.device, image_shape: tuple[int, int, int]) -> int:
        # on a CPU a batch of one measured fastest (benchmarks/models.py): the activations of larger
        # batches leave the caches
        return 1 if device.type == "cpu" else super().preferred_batch_size(device, image_shape)

    def predict(self, image: torch.Tensor, mask: torch.Tensor, image_ids: list[int]) -> torch.Tensor:
        with torch.autocast(image.device.type, dtype=torch.bfloat16, enabled=self.bfloat16):
            return self.model(torch.cat([image, mask], dim=1) if self.concat_mask else image).float()

    def model_card(self) -> dict[str, str]:
        generator, _ = self.checked(torch.device("meta"))
        section = read_config(self.files[0])["generator"]
        return {"architecture": f"LaMa {section['kind']}: {section.get('n_blocks', 9)} blocks, ngf "
                                f"{section.get('ngf', 64)}, {section.get('n_downsampling', 3)} downsamplings",
                "parameters": parameter_count(generator), **super().model_card()}


def _checkpoint(folder: Path) -> str:
    models = sorted(p.name for p in (folder / "models").glob("*.ckpt"))
    if "best.ckpt" in models or not models:
        return "best.ckpt"
    if len(models) > 1:
        raise UserError(f"{folder / 'models'} holds {len(models)} checkpoints: name one, lama:{folder}"
                        f"[checkpoint={models[0]}]")
    return models[0]


def read_config(path: Path) -> dict:
    """LaMa's ``config.yaml`` as a dictionary, its ``${a.b}`` references (OmegaConf interpolations)
    replaced by the values they name."""
    import yaml

    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read {path} ({str(exc).splitlines()[0][:100]}): it should be LaMa's config.yaml") \
            from None
    if not isinstance(config, dict):
        raise UserError(f"{path} is not a LaMa configuration (no mapping at the top): check the file")
    return _resolve(config, config, path)


def _resolve(node, root: dict, path: Path, depth: int = 0):
    if depth > 20:
        raise UserError(f"{path}: a ${{...}} reference refers to itself: check the file")
    if isinstance(node, dict):
        return {key: _resolve(value, root, path, depth) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(value, root, path, depth) for value in node]
    found = re.fullmatch(r"\$\{([\w.]+)\}", node) if isinstance(node, str) else None
    if not found:
        return node
    value = root
    for part in found.group(1).split("."):
        if not isinstance(value, dict) or part not in value:
            raise UserError(f"{path}: ${{{found.group(1)}}} names nothing in the file: check the file")
        value = value[part]
    return _resolve(value, root, path, depth + 1)


def build_generator(section, path: Path) -> FFCResNetGenerator:
    """The network a config's ``generator`` section describes; kinds and options benchkit does not
    build are refused by name."""
    if not isinstance(section, dict) or "kind" not in section:
        raise UserError(f"{path} has no generator section with a kind: it should be a LaMa model's config.yaml")
    kind = section["kind"]
    if kind != "ffc_resnet":
        model = f" ({OTHER_KINDS[kind]})" if kind in OTHER_KINDS else ""
        raise UserError(f"{path}: generator kind '{kind}'{model} is not supported: lama: builds ffc_resnet "
                        f"(big-lama, lama-fourier); {EXTERNAL_ROUTE}")
    unknown = sorted(set(section) - GENERATOR_OPTIONS)
    unknown += sorted(f"{key}.{sub}" for key in ("init_conv_kwargs", "downsample_conv_kwargs", "resnet_conv_kwargs")
                      for sub in set(section.get(key) or {}) - FFC_OPTIONS)
    if unknown:
        raise UserError(f"{path}: generator option '{unknown[0]}' is not supported by lama:; {EXTERNAL_ROUTE}")
    lfu = [key for key in ("init_conv_kwargs", "downsample_conv_kwargs", "resnet_conv_kwargs")
           if (section.get(key) or {}).get("enable_lfu", True)]
    if lfu:
        raise UserError(f"{path}: {lfu[0]}.enable_lfu is true (FFC's local Fourier unit, which no released LaMa "
                        f"model uses): lama: builds models with enable_lfu: false; {EXTERNAL_ROUTE}")
    if section.get("add_out_act", True) not in (True, False, *ACTIVATIONS):
        raise UserError(f"{path}: add_out_act '{section['add_out_act']}' is not one of sigmoid, tanh")
    options = {key: value for key, value in section.items() if key != "kind"}
    return FFCResNetGenerator(**options)


@hookimpl
def register_methods(register):
    register(LamaInpainter)
