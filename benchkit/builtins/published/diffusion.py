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

import importlib.util
import inspect
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import torch

from benchkit.builtins.published.convention import Convention
from benchkit.builtins.published.model import PublishedModel, parameter_count
from benchkit.datafiles import read_text_table
from benchkit.errors import UserError
from benchkit.files import is_folder
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import MethodContext
from benchkit.plugin.options import FilePath, Range


@dataclass(frozen=True)
class Route:
    """How benchkit calls a pipeline class. ``autoencoder``: the component whose scale sets the size
    rule; sides are multiples of that scale times ``packing`` (FLUX packs 2 x 2 latent pixels into a
    token), or of its square when ``squared`` (Kandinsky 2.2 rounds latents up to whole multiples of
    its MoVQ scale). ``signed``: images in [-1, 1] in and out, not [0, 1]. ``one_at_a_time``: the
    pipeline mixes a batch's images (Kandinsky 2.2 pastes the first image's known latents into all)."""

    autoencoder: str = "vae"
    packing: int = 1
    squared: bool = False
    signed: bool = False
    one_at_a_time: bool = False


PIPELINES = {"StableDiffusionInpaintPipeline": Route(), "StableDiffusionXLInpaintPipeline": Route(),
             "FluxFillPipeline": Route(packing=2),
             "KandinskyV22InpaintCombinedPipeline": Route("movq", squared=True, signed=True, one_at_a_time=True),
             "KandinskyV22InpaintPipeline": Route("movq", squared=True, signed=True, one_at_a_time=True)}
NEEDS_PRIOR = {"KandinskyV22InpaintPipeline": "KandinskyV22PriorPipeline"}  # a decoder folder and its prior's
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
    prior : str
        Kandinsky 2.2's prior pipeline folder (``kandinsky-2-2-prior``), when the folder is its
        inpainting decoder (``kandinsky-2-2-decoder-inpaint``).
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
        How sides reach the multiple: ``pad`` (symmetric, cropped after), ``resize`` (bicubic), or
        ``crop`` (a window around each hole, padded; IOPaint's crop strategy).
    margin : int
        With ``strategy=crop``: pixels of context kept around each hole (IOPaint's default 128).
    """

    name = "diffusers"
    description = "a local diffusers inpainting pipeline folder (SD 1.5/2, SDXL, FLUX.1 Fill, Kandinsky 2.2), offline"
    spec_option = "folder"
    requires = ("diffusers", "transformers")
    libraries = ("torch", "diffusers", "transformers")
    install_hint = "pip install 'benchkit[diffusion]'"
    needs_cell = True
    slow = True
    speed = "SD-1.5-sized, 2 steps, batch 4: 6.8 at 256 px, 31 at 512 (benchmarks/models.py --sd)"

    def __init__(self, folder: FilePath | None = None, name: str | None = None, prompt: str = "",
                 negative_prompt: str = "", prompts: FilePath | None = None, prior: FilePath | None = None,
                 steps: Annotated[int, Range(1, 1000)] = 50, guidance: Annotated[float, Range(0)] | None = None,
                 strength: Annotated[float, Range(0, 1)] | None = None,
                 dtype: Literal["float32", "float16", "bfloat16"] = "float32",
                 strategy: Literal["pad", "resize", "crop"] = "pad",
                 margin: Annotated[int, Range(1, 4096)] = 128) -> None:
        if not folder:
            raise UserError("method 'diffusers' needs a folder: --methods diffusers:sd-inpaint/")
        self.folder = Path(folder)
        self.pipeline_class = read_pipeline_class(self.folder)
        self.prior = check_prior(self.pipeline_class, Path(prior) if prior else None)
        self.files = pipeline_files(self.folder) + (pipeline_files(self.prior) if self.prior else []) + \
            ([Path(prompts)] if prompts else [])
        self.prompt_file = read_text_table(Path(prompts), "id", "prompt", "prompts file") if prompts else {}
        self.captions: tuple[str, ...] | None = None
        self.prompt, self.negative_prompt, self.steps, self.guidance = prompt, negative_prompt, steps, guidance
        self.strength, self.dtype = strength, DTYPES[dtype]
        self.route = route = PIPELINES[self.pipeline_class]
        scale = autoencoder_scale(self.folder, route.autoencoder)
        multiple = scale * scale if route.squared else scale * route.packing
        self.convention = Convention("hole", "unit", multiple, strategy, margin=margin)

    def preferred_batch_size(self, device: torch.device, image_shape: tuple[int, int, int]) -> int:
        # a batch of 4 measured faster per image than one at a time (benchmarks/models.py --sd); the
        # activations of larger batches grow past a CPU's memory at 512 px
        return 4

    def check(self, context: MethodContext) -> None:
        super().check(context)
        self.seed, self.captions = context.seed, context.captions

    def verify(self) -> None:
        """The call's options against the pipeline's, without loading gigabytes of weights twice
        (the folder's layout was checked when the spec was read)."""
        parameters = inspect.signature(pipeline_type(self.pipeline_class).__call__).parameters
        given = {"negative_prompt": self.negative_prompt, "strength": self.strength, "guidance_scale": self.guidance}
        for name, value in given.items():  # named parameters only: a **kwargs would swallow them silently
            if value not in (None, "") and name not in parameters:
                option = {"guidance_scale": "guidance"}.get(name, name)
                raise UserError(f"{self.pipeline_class} takes no {name}: drop {option}=")

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
        pipeline = from_folder(pipeline_class, self.folder, self.dtype, extra)
        if self.prior:  # Kandinsky 2.2 as published: a decoder folder and a prior folder, joined
            prior = from_folder(pipeline_type(NEEDS_PRIOR[self.pipeline_class]), self.prior, self.dtype, {})
            pipeline = pipeline_type("KandinskyV22InpaintCombinedPipeline")(
                unet=pipeline.unet, scheduler=pipeline.scheduler, movq=pipeline.movq, prior_prior=prior.prior,
                prior_image_encoder=prior.image_encoder, prior_text_encoder=prior.text_encoder,
                prior_tokenizer=prior.tokenizer, prior_scheduler=prior.scheduler,
                prior_image_processor=prior.image_processor)
        pipeline.set_progress_bar_config(disable=True)
        self.model = pipeline.to(device)

    def predict(self, image: torch.Tensor, mask: torch.Tensor, image_ids: list[int]) -> torch.Tensor:
        if not self.route.one_at_a_time:
            return self._call(image, mask, image_ids)
        return torch.cat([self._call(image[i:i + 1], mask[i:i + 1], image_ids[i:i + 1]) for i in range(len(image))])

    def _call(self, image: torch.Tensor, mask: torch.Tensor, ids: list[int]) -> torch.Tensor:
        call = {"prompt": self.prompts(ids), "image": image * 2 - 1 if self.route.signed else image,
                "mask_image": mask, "height": image.shape[-2], "width": image.shape[-1],
                "num_inference_steps": self.steps, "output_type": "pt",
                "generator": [torch.Generator(image.device).manual_seed(s) for s in self.image_seeds(self.seed, ids)]}
        if self.guidance is not None:
            call["guidance_scale"] = self.guidance
        if self.strength is not None:
            call["strength"] = self.strength
        if self.negative_prompt:
            call["negative_prompt"] = [self.negative_prompt] * len(ids)
        output = self.model(**call).images.float()
        return (output * 0.5 + 0.5).clamp(0, 1) if self.route.signed else output  # as the pipeline's own "np" output

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


def from_folder(pipeline_class, folder: Path, dtype: torch.dtype, extra: dict):
    """A pipeline from its folder, offline and from safetensors only; a folder it cannot load is one line."""
    try:
        with warnings.catch_warnings():  # torch_dtype, which every diffusers from 0.30 takes, is called deprecated
            warnings.simplefilter("ignore", FutureWarning)
            return pipeline_class.from_pretrained(  # without accelerate, diffusers warns unless told
                folder, local_files_only=True, use_safetensors=True, torch_dtype=dtype,
                low_cpu_mem_usage=importlib.util.find_spec("accelerate") is not None, **extra)
    except (OSError, ValueError) as exc:
        raise UserError(f"diffusers cannot load {folder} ({str(exc).splitlines()[0][:160]}): the folder needs every "
                        "component in safetensors, as save_pretrained writes them") from None


def check_prior(pipeline_class: str, prior: Path | None) -> Path | None:
    """The prior folder a decoder pipeline needs (Kandinsky 2.2), checked; None for the others."""
    if pipeline_class not in NEEDS_PRIOR:
        if prior:
            raise UserError(f"{pipeline_class} takes no prior: drop prior=")
        return None
    if not prior:
        raise UserError(f"{pipeline_class} is Kandinsky 2.2's decoder: add prior=DIR, its prior pipeline's folder "
                        "(kandinsky-2-2-prior)")
    name = read_model_index(prior).get("_class_name")
    if name != NEEDS_PRIOR[pipeline_class]:
        raise UserError(f"prior folder {prior} holds a {name}, not a {NEEDS_PRIOR[pipeline_class]}: check the path")
    return prior


def read_model_index(folder: Path) -> dict:
    """A pipeline folder's ``model_index.json``."""
    if not is_folder(folder):
        raise UserError(f"pipeline folder {folder} does not exist: check the path")
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{folder} has no readable model_index.json ({exc}): give a folder written by a diffusers "
                        "pipeline's save_pretrained") from None
    if not isinstance(index, dict):
        raise UserError(f"{folder}/model_index.json is not an object: give a folder written by save_pretrained")
    return index


def read_pipeline_class(folder: Path) -> str:
    """The pipeline class ``model_index.json`` names, checked against the ones benchkit routes and
    the component folders it lists."""
    index = read_model_index(folder)
    name = index.get("_class_name")
    if name not in PIPELINES:
        raise UserError(f"{folder} holds a {name}: diffusers: runs {', '.join(PIPELINES)}")
    for component, entry in index.items():
        if not component.startswith("_") and isinstance(entry, list) and entry[0] and not is_folder(folder / component):
            raise UserError(f"{folder} lacks the component '{component}' that model_index.json names: copy the "
                            "pipeline's whole folder")
    return name


def autoencoder_scale(folder: Path, component: str) -> int:
    """The autoencoder's downsampling factor, ``2 ** (len(block_out_channels) - 1)`` as diffusers
    computes ``vae_scale_factor`` and ``movq_scale_factor`` (8 for SD's, FLUX's and Kandinsky's)."""
    try:
        blocks = json.loads((folder / component / "config.json").read_text())["block_out_channels"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{folder}/{component}/config.json has no block_out_channels ({exc}): copy the pipeline's "
                        "whole folder") from None
    return 2 ** (len(blocks) - 1)


def pipeline_files(folder: Path) -> list[Path]:
    """Every file of the pipeline folder (all of them key the cells: configs, tokenizers, weights)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not any(q.startswith(".") for q in p.parts))


@hookimpl
def register_methods(register):
    register(DiffusersInpainter)
