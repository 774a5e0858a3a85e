"""Metrics on foundation-model embeddings, as 2026 inpainting papers report them.

* ``fd-dinov2``: the Fréchet distance between DINOv2 ViT-L/14 features of a cell's composites and
  of its ground truth (Stein et al., NeurIPS 2023, and their ``dgm-eval``), computed through the
  same mergeable state as FID, per cell and per hole-area bin. Preprocessing as ``dgm-eval``'s
  ``dgm_eval/models/dinov2.py``: the image as 8-bit RGB (as it is read from a file), resized to
  224 x 224 by PIL's bicubic filter, scaled to [0, 1], normalised by ImageNet's mean and standard
  deviation; the feature is the class token after the final layer norm (torch hub's model output,
  transformers' ``pooler_output``), 1024 numbers.
* ``clip-score``: torchmetrics' CLIP score (``torchmetrics/functional/multimodal/clip_score.py``):
  100 times the cosine of CLIP's image embedding of the composite and its text embedding of the
  image's prompt or caption, clamped at 0, per image. The image is given to CLIP's processor on the
  0-255 scale, as torchmetrics is given images.

The networks are transformers' ``Dinov2Model`` and ``CLIPModel``, read from local files (``benchkit
weights``): DINOv2 from Hugging Face's ``facebook/dinov2-large`` folder (safetensors) or torch hub's
``dinov2_vitl14_pretrain.pth`` (a state dict, read with ``weights_only`` and its keys renamed to
transformers'), CLIP from the ``openai/clip-vit-large-patch14`` folder. Nothing is downloaded.
"""
from __future__ import annotations

import numpy as np
import torch

from benchkit.builtins.metrics.feature_stats import FeatureDistance
from benchkit.builtins.metrics.perceptual import as_rgb, in_chunks
from benchkit.builtins.metrics.weights import WEIGHTS, find_weights, search_dirs
from benchkit.errors import UserError
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import ImageMetric, MetricContext

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def dgm_eval_preprocess(images: torch.Tensor) -> torch.Tensor:
    """``dgm-eval``'s DINOv2 input: 8-bit RGB, PIL bicubic to 224 x 224, [0, 1], ImageNet-normalised."""
    from PIL import Image

    array = (as_rgb(images).detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    resized = np.stack([np.asarray(Image.fromarray(image.permute(1, 2, 0).numpy()).resize(
        (224, 224), Image.Resampling.BICUBIC)) for image in array])
    x = torch.from_numpy(resized).permute(0, 3, 1, 2).float() / 255
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).to(images.device)


def hub_to_transformers(state: dict[str, torch.Tensor], names: set[str]) -> dict[str, torch.Tensor]:
    """torch hub's DINOv2 state dict (``blocks.N.attn.qkv`` ...) in the names of transformers'
    ``Dinov2Model`` (``names``: its state dict's keys, which differ between transformers 4 and 5),
    the fused query-key-value projection split in three."""
    v5 = "encoder.layer.0.attention.q_proj.weight" in names
    qkv = ("q_proj", "k_proj", "v_proj") if v5 else ("attention.query", "attention.key", "attention.value")
    parts = {"norm1": "norm1", "norm2": "norm2", "attn.proj": "attention.o_proj" if v5 else "attention.output.dense",
             "ls1.gamma": "layer_scale1.lambda1", "ls2.gamma": "layer_scale2.lambda1", "mlp.fc1": "mlp.fc1",
             "mlp.fc2": "mlp.fc2"}
    renamed = {"cls_token": "embeddings.cls_token", "mask_token": "embeddings.mask_token",
               "pos_embed": "embeddings.position_embeddings",
               "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
               "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
               "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias"}
    out = {}
    for key, value in state.items():
        if key in renamed:
            out[renamed[key]] = value
            continue
        _, index, rest = key.split(".", 2)  # blocks.N.rest
        prefix = f"encoder.layer.{index}."
        if rest.startswith("attn.qkv."):
            for name, part in zip(qkv, value.chunk(3)):
                out[f"{prefix}attention.{name}.{rest.rsplit('.', 1)[1]}"] = part
        elif rest in ("ls1.gamma", "ls2.gamma"):
            out[prefix + parts[rest]] = value
        else:
            stem, leaf = rest.rsplit(".", 1)
            out[f"{prefix}{parts[stem]}.{leaf}"] = value
    return out


def quiet_transformers() -> None:
    """No progress bars of transformers' own while a run loads a network: benchkit reports progress."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def hub_config(state: dict[str, torch.Tensor]):
    """transformers' configuration of a torch hub DINOv2 state dict, read from its shapes (64
    numbers per attention head in every DINOv2 model)."""
    from transformers import Dinov2Config

    hidden = state["cls_token"].shape[-1]
    patch = state["patch_embed.proj.weight"].shape[-1]
    return Dinov2Config(hidden_size=hidden, num_hidden_layers=len({k.split(".")[1] for k in state
                                                                   if k.startswith("blocks.")}),
                        num_attention_heads=hidden // 64, intermediate_size=state["blocks.0.mlp.fc1.weight"].shape[0],
                        patch_size=patch, image_size=round((state["pos_embed"].shape[1] - 1) ** 0.5) * patch,
                        layerscale_value=1.0)


def load_dinov2(weights_dir, device):
    """transformers' Dinov2Model from the Hugging Face folder (preferred: safetensors) or the torch
    hub file, whichever is found first in that order."""
    from transformers import Dinov2Model

    quiet_transformers()
    entry = WEIGHTS["dinov2-large"]
    for folder in search_dirs(weights_dir):
        if entry.present(folder):
            try:
                model = Dinov2Model.from_pretrained(folder / entry.filename, local_files_only=True,
                                                    use_safetensors=True)
            except (OSError, ValueError, RuntimeError) as exc:
                reason = str(exc).splitlines()[0][:100]
                raise UserError(f"{folder / entry.filename} is not a DINOv2 model folder ({reason}): delete it and "
                                "run `benchkit weights download dinov2-large`") from None
            return model.to(device).eval().requires_grad_(False), str(folder / entry.filename)
    try:
        path = find_weights("dinov2-vitl14", weights_dir)
    except UserError:
        raise UserError(f"fd-dinov2 needs DINOv2 ViT-L/14 weights: the folder {entry.filename}/ (config.json, "
                        f"model.safetensors) or dinov2_vitl14_pretrain.pth in {search_dirs(weights_dir)[0]}: run "
                        "`benchkit weights download dinov2-large` where there is internet") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = Dinov2Model(hub_config(state))
        model.load_state_dict(hub_to_transformers(state, set(model.state_dict())), strict=True)
    except Exception as exc:  # truncated, not a torch file, other keys or shapes: the file, not benchkit
        raise UserError(f"{path} is not torch hub's DINOv2 checkpoint ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:100]}): delete it and run `benchkit weights download "
                        "dinov2-large`") from None
    return model.to(device).eval().requires_grad_(False), str(path)


class DinoV2Features:
    """Mixin: DINOv2's class token after the final layer norm, on ``dgm-eval``'s preprocessing."""

    requires = ("transformers",)
    install_hint = "pip install 'benchkit[semantic]'"

    def setup(self, context: MetricContext) -> None:
        self.net, where = load_dinov2(context.weights_dir, context.device)
        self.seed, self.source = context.seed, ("dinov2", where, str(context.device))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return in_chunks(lambda x: self.net(pixel_values=x).pooler_output, dgm_eval_preprocess(images))


class FDDinoV2(DinoV2Features, FeatureDistance):
    name = "fd-dinov2"
    description = "Fréchet distance of DINOv2 ViT-L/14 features (dgm-eval's), composites vs ground truth (set metric)"
    digits = 2
    about = {"variant": "dgm-eval", "features": "DINOv2 class token after the final layer norm",
             "resize": "8-bit RGB, PIL bicubic to 224 x 224, ImageNet normalisation"}


class CLIPScore(ImageMetric):
    name = "clip-score"
    description = "torchmetrics' CLIP score: 100 x cosine of the composite's and its prompt's CLIP embeddings, >= 0"
    unit, digits = "", 2
    needs_texts = True
    requires = ("transformers",)
    install_hint = "pip install 'benchkit[semantic]'"
    about = {"variant": "torchmetrics", "network": "CLIP ViT-L/14 (openai/clip-vit-large-patch14)"}

    def setup(self, context: MetricContext) -> None:
        from transformers import CLIPModel, CLIPProcessor

        folder = find_weights("clip-vit-large-patch14", context.weights_dir)
        quiet_transformers()
        self.model = CLIPModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
        self.model = self.model.to(context.device).eval().requires_grad_(False)
        try:
            self.processor = CLIPProcessor.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise UserError(f"CLIP folder {folder} has no usable processor ({str(exc).splitlines()[0][:120]}): it "
                            "needs preprocessor_config.json and the tokenizer's files (benchkit weights download "
                            "clip-vit-large-patch14)") from None

    def score_batch(self, batch) -> torch.Tensor:
        # as torchmetrics' _get_features: images (0-255) and texts processed apart, texts cut to the
        # text model's positions
        device = next(self.model.parameters()).device
        images = [image.cpu() for image in as_rgb(batch.prediction) * 255]
        pixels = self.processor(images=images, return_tensors="pt", padding=True)["pixel_values"]
        text = self.processor(text=list(batch.texts), return_tensors="pt", padding=True)
        limit = self.model.config.text_config.max_position_embeddings
        with torch.no_grad():
            image = _embedding(self.model.get_image_features(pixels.to(device)))
            words = _embedding(self.model.get_text_features(text["input_ids"][..., :limit].to(device),
                                                            text["attention_mask"][..., :limit].to(device)))
        image, words = image / image.norm(p=2, dim=-1, keepdim=True), words / words.norm(p=2, dim=-1, keepdim=True)
        return (100 * (image * words).sum(-1)).clamp(min=0).double().cpu()


def _embedding(output) -> torch.Tensor:
    """The embedding tensor of ``get_*_features`` (a tensor, or in newer transformers an output object)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@hookimpl
def register_metrics(register):
    for cls in (FDDinoV2, CLIPScore):
        register(cls)
