"""``diffusers:DIR``: a local diffusers inpainting pipeline folder (``model_index.json`` and one
folder per component), loaded offline.

Loading: ``local_files_only=True`` (nothing is fetched, ever) and ``use_safetensors=True`` (no
pickled ``.bin`` weights are read); the class named by ``model_index.json`` picks the pipeline, and
its size rule: sides are multiples of the VAE's scale (8 for Stable Diffusion 1.5 / 2 and SDXL),
times 2 for FLUX.1 Fill, which packs 2 x 2 latent pixels into a token (16). A pipeline's safety
checker, which blacks out images it flags, is not loaded: a benchmark scores what the model made.

Convention (diffusers' ``VaeImageProcessor``): images in [0, 1], the mask white (1) where the model
repaints. ``height`` and ``width`` are the image's own size padded to the multiple, never the
pipeline's default 512 or 1024. Nothing is pasted back by the pipeline and its VAE round trip changes
the known pixels: the raw output is kept (known-region metrics) and benchkit composites it. Each
image has its own generator, seeded by the run's seed and the image's position, so an image's result
does not depend on its batch.
"""
from __future__ import annotations

import csv
import inspect
import json
from pathlib import Path
from typing import Annotated, Literal

import torch

from benchkit.builtins.published.convention import Convention
from benchkit.builtins.published.cropping import inpaint_windows
from benchkit.builtins.published.model import PublishedModel, parameter_count
from benchkit.errors import UserError
from benchkit.files import is_folder
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import MethodContext
from benchkit.plugin.options import FilePath, Range

# each routed pipeline, and the latent pixels it packs into one token (FLUX packs 2 x 2): sides must be
# multiples of the VAE's scale times that
PIPELINES = {"StableDiffusionInpaintPipeline": 1, "StableDiffusionXLInpaintPipeline": 1, "FluxFillPipeline": 2}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class DiffusersInpainter(PublishedModel):
    """A diffusers inpainting pipeline folder (``diffusers:DIR[prompt=...,steps=25]``).

    Parameters
    ----------
    folder : str
        The pipeline folder (given after ``diffusers:``), as ``save_pretrained`` writes it.
    name : str or None
        How the rows read.
    prompt : str
        The prompt for every image without its own in ``prompts`` (default: the dataset's caption
        where it has captions, else empty).
    negative_prompt : str
        The negative prompt, for pipelines that take one.
    prompts : str
        A CSV (columns ``id,prompt``) or JSON (``{"id": "prompt"}``) file of prompts by image id
        (the image's position in the test split, as ``benchkit export`` numbers them).
    steps : int
        Denoising steps.
    guidance : float or None
        Classifier-free guidance scale (default: the pipeline's own).
    strength : float or None
        How far the hole's latents are noised (1.0: fully; default: the pipeline's own, SD 1.0, SDXL 0.9999).
    dtype : str
        The pipeline's weights and computation: float32, float16 or bfloat16.
    strategy : str
        How sides reach the multiple: ``pad`` (symmetric, cropped after) or ``resize`` (bicubic).
    margin : int
        With ``strategy=crop``: pixels of context kept around each hole (IOPaint's default 128).
    """

    name = "diffusers"
    description = "a local diffusers inpainting pipeline folder (SD 1.5/2, SDXL, FLUX.1 Fill), offline"
    spec_option = "folder"
    requires = ("diffusers", "transformers")
    libraries = ("torch", "diffusers", "transformers")
    install_hint = "pip install 'benchkit[diffusion]'"
    needs_cell = True
    slow = True

    def __init__(self, folder: FilePath | None = None, name: str | None = None, prompt: str = "",
                 negative_prompt: str = "", prompts: FilePath | None = None,
                 steps: Annotated[int, Range(1, 1000)] = 50, guidance: Annotated[float, Range(0)] | None = None,
                 strength: Annotated[float, Range(0, 1)] | None = None,
                 dtype: Literal["float32", "float16", "bfloat16"] = "float32",
                 strategy: Literal["pad", "resize", "crop"] = "pad",
                 margin: Annotated[int, Range(1, 4096)] = 128) -> None:
        if not folder:
            raise UserError("method 'diffusers' needs a folder: --methods diffusers:sd-inpaint/")
        self.folder = Path(folder)
        self.pipeline_class = read_pipeline_class(self.folder)
        self.files = pipeline_files(self.folder) + ([Path(prompts)] if prompts else [])
        self.prompt_file = read_prompts(Path(prompts)) if prompts else {}
        self.captions: tuple[str, ...] | None = None
        self.prompt, self.negative_prompt, self.steps, self.guidance = prompt, negative_prompt, steps, guidance
        self.strength, self.dtype = strength, DTYPES[dtype]
        multiple = vae_scale(self.folder) * PIPELINES[self.pipeline_class]
        self.convention = Convention("hole", "unit", multiple, strategy, margin=margin)

    def check(self, context: MethodContext) -> None:
        """The call's options against the pipeline's, without loading gigabytes of weights twice
        (the folder's layout was checked when the spec was read)."""
        parameters = inspect.signature(pipeline_type(self.pipeline_class).__call__).parameters
        if self.negative_prompt and "negative_prompt" not in parameters:
            raise UserError(f"{self.pipeline_class} takes no negative prompt: drop negative_prompt=")
        self.seed, self.captions = context.seed, context.captions

    def setup(self, context: MethodContext) -> None:
        self.seed, self.captions = context.seed, context.captions
        self.load(context.device)

    def prompts(self, image_ids: list[int]) -> list[str]:
        """Each image's prompt: its entry in ``prompts=FILE``, else ``prompt=``, else the dataset's
        caption, else empty."""
        captions = self.captions or ()
        return [self.prompt_file.get(str(i)) or self.prompt or (captions[i] if i < len(captions) else "")
                for i in image_ids]

    def load(self, device: torch.device) -> None:
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        pipeline_class = pipeline_type(self.pipeline_class)
        diffusers_logging.disable_progress_bar()  # benchkit reports progress; the libraries' bars stay off
        transformers_logging.disable_progress_bar()
        extra = {"safety_checker": None, "requires_safety_checker": False} \
            if "safety_checker" in inspect.signature(pipeline_class.__init__).parameters else {}
        try:
            pipeline = pipeline_class.from_pretrained(self.folder, local_files_only=True, use_safetensors=True,
                                                     torch_dtype=self.dtype, **extra)
        except (OSError, ValueError) as exc:
            raise UserError(f"diffusers cannot load {self.folder} ({str(exc).splitlines()[0][:160]}): the folder "
                            "needs every component in safetensors, as save_pretrained writes them") from None
        pipeline.set_progress_bar_config(disable=True)
        self.model = pipeline.to(device)

    def inpaint(self, images, known, *, mask=None, image_ids=()):
        ids = list(image_ids)
        if self.convention.strategy != "crop":
            self.image_ids = ids
            return self.run_sized(images, known)

        def window(image, known_part, index):  # each window has its image's prompt and generator
            self.image_ids = [ids[index]]
            return self.run_sized(image, known_part)

        return inpaint_windows(images, known, self.convention.margin, window)

    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        call = {"prompt": self.prompts(self.image_ids), "image": image,
                "mask_image": mask, "height": image.shape[-2], "width": image.shape[-1],
                "num_inference_steps": self.steps, "output_type": "pt",
                "generator": [torch.Generator(image.device).manual_seed(s)
                              for s in self.image_seeds(self.seed, self.image_ids)]}
        if self.guidance is not None:
            call["guidance_scale"] = self.guidance
        if self.strength is not None:
            call["strength"] = self.strength
        if self.negative_prompt:
            call["negative_prompt"] = [self.negative_prompt] * len(self.image_ids)
        return self.model(**call).images.float()

    def model_card(self) -> dict[str, str]:
        self.load(torch.device("cpu"))
        networks = {name: parameter_count(module) for name, module in self.model.components.items()
                    if isinstance(module, torch.nn.Module)}
        card = {"architecture": f"{self.pipeline_class} ({', '.join(f'{k} {v}' for k, v in networks.items())})",
                **super().model_card()}
        self.release()
        return card


def pipeline_type(name: str):
    """diffusers' pipeline class of that name; an installation that cannot import it is one line."""
    try:
        import diffusers

        return getattr(diffusers, name)
    except (ImportError, RuntimeError) as exc:  # diffusers imports transformers, which may import a broken torchvision
        while exc.__cause__ is not None:  # the innermost reason, not the lazy importer's wrapper
            exc = exc.__cause__
        raise UserError(f"diffusers cannot import {name} ({str(exc).splitlines()[0][:160]}): check that diffusers, "
                        "transformers and torchvision match this torch (pip install 'benchkit[diffusion]')") from None


def read_pipeline_class(folder: Path) -> str:
    """The pipeline class ``model_index.json`` names, checked against the ones benchkit routes and
    the component folders it lists."""
    if not is_folder(folder):
        raise UserError(f"pipeline folder {folder} does not exist: check the path")
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{folder} has no readable model_index.json ({exc}): give a folder written by a diffusers "
                        "pipeline's save_pretrained") from None
    name = index.get("_class_name")
    if name not in PIPELINES:
        raise UserError(f"{folder} holds a {name}: diffusers: runs {', '.join(PIPELINES)}")
    for component, entry in index.items():
        if not component.startswith("_") and isinstance(entry, list) and entry[0] and not is_folder(folder / component):
            raise UserError(f"{folder} lacks the component '{component}' that model_index.json names: copy the "
                            "pipeline's whole folder")
    return name


def vae_scale(folder: Path) -> int:
    """The VAE's downsampling factor, ``2 ** (len(block_out_channels) - 1)`` as diffusers computes
    ``vae_scale_factor`` (8 for Stable Diffusion's and FLUX's VAEs)."""
    try:
        blocks = json.loads((folder / "vae" / "config.json").read_text())["block_out_channels"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{folder}/vae/config.json has no block_out_channels ({exc}): copy the pipeline's whole "
                        "folder") from None
    return 2 ** (len(blocks) - 1)


def pipeline_files(folder: Path) -> list[Path]:
    """Every file of the pipeline folder (all of them key the cells: configs, tokenizers, weights)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not any(q.startswith(".") for q in p.parts))


def read_prompts(path: Path) -> dict[str, str]:
    """Prompts by image id from a CSV (``id,prompt``) or JSON (``{"id": "prompt"}``) file."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            prompts = json.loads(text)
            if not isinstance(prompts, dict):
                raise ValueError("the JSON is not an object of id: prompt")
            return {str(k): str(v) for k, v in prompts.items()}
        rows = list(csv.DictReader(text.splitlines()))
        if rows and not {"id", "prompt"} <= set(rows[0]):
            raise ValueError(f"its columns are {', '.join(rows[0])}, not id and prompt")
        return {row["id"]: row["prompt"] for row in rows}
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read prompts file {path} ({exc}): give a CSV with columns id,prompt or a JSON "
                        "object of id: prompt") from None


@hookimpl
def register_methods(register):
    register(DiffusersInpainter)
