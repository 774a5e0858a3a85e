"""Published model files in their published formats, with random weights, made by the tests.

A LaMa folder as advimman/lama publishes ``big-lama/``: ``config.yaml`` written by OmegaConf (with
its ``${...}`` interpolations, as the released configs have them) and ``models/best.ckpt``, a
Lightning-style checkpoint whose callback state is keyed by the callback class and whose
hyper-parameters hold an OmegaConf ``DictConfig``, both pickled under their real class names.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import torch

from benchkit.builtins.nets.ffc import FFCResNetGenerator

LAMA_GENERATOR = """
kind: ffc_resnet
input_nc: 4
output_nc: 3
ngf: {ngf}
n_downsampling: 3
n_blocks: {blocks}
add_out_act: sigmoid
init_conv_kwargs:
  ratio_gin: 0
  ratio_gout: 0
  enable_lfu: false
downsample_conv_kwargs:
  ratio_gin: ${{generator.init_conv_kwargs.ratio_gout}}
  ratio_gout: ${{generator.downsample_conv_kwargs.ratio_gin}}
  enable_lfu: false
resnet_conv_kwargs:
  ratio_gin: 0.75
  ratio_gout: ${{generator.resnet_conv_kwargs.ratio_gin}}
  enable_lfu: {lfu}
"""


def lightning_callback_class():
    """A class pickled as ``pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint``, made
    importable under that name for the pickler (the test does not need Lightning itself)."""
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint"]
    for name in names:
        sys.modules.setdefault(name, types.ModuleType(name))
    module = sys.modules[names[-1]]
    if not hasattr(module, "ModelCheckpoint"):
        module.ModelCheckpoint = type("ModelCheckpoint", (), {"__module__": names[-1]})
    return module.ModelCheckpoint


def lama_generator_config(ngf: int = 8, blocks: int = 2, lfu: bool = False) -> str:
    return LAMA_GENERATOR.format(ngf=ngf, blocks=blocks, lfu=str(lfu).lower())


def make_lama_folder(root: Path, ngf: int = 8, blocks: int = 2, lfu: bool = False, seed: int = 0,
                     extra_checkpoint: dict | None = None) -> tuple[Path, FFCResNetGenerator]:
    """A ``big-lama``-style folder with a random generator; returns the folder and the generator
    (its running statistics made non-trivial so that batch norm matters)."""
    from omegaconf import OmegaConf

    text = "generator:" + lama_generator_config(ngf, blocks, lfu).replace("\n", "\n  ")
    config = OmegaConf.create(text + "\ntraining_model:\n  kind: default\n  concat_mask: true\n"
                              "visualizer:\n  kind: directory\n")
    folder = root / "big-lama"
    (folder / "models").mkdir(parents=True)
    OmegaConf.save(config, folder / "config.yaml")
    torch.manual_seed(seed)
    generator = FFCResNetGenerator(**{k: v for k, v in OmegaConf.to_container(config.generator, resolve=True).items()
                                      if k != "kind"})
    for module in generator.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
    generator.eval()
    state = {f"generator.{k}": v for k, v in generator.state_dict().items()}
    state["discriminator.model0.0.weight"] = torch.randn(4, 3, 3, 3)  # the rest of a training checkpoint
    state["loss_resnet_pl.impl.conv1.weight"] = torch.randn(4, 3, 3, 3)
    checkpoint = {"epoch": 39, "global_step": 1000, "pytorch-lightning_version": "1.2.9",
                  "callbacks": {lightning_callback_class(): {"monitor": "val_ssim_fid100_f1_total_mean",
                                                             "best_model_score": torch.tensor(0.9)}},
                  "optimizer_states": [], "lr_schedulers": [], "state_dict": state,
                  "hparams_name": "kwargs", "hyper_parameters": {"config": config, "use_ddp": True}}
    checkpoint.update(extra_checkpoint or {})
    torch.save(checkpoint, folder / "models" / "best.ckpt")
    return folder, generator


class Payload:
    """Unpickling this creates ``path``: the proof that a loader ran code from a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def clip_tokenizer(root: Path):
    """A CLIP tokenizer of a small vocabulary (the 26 letters, as pieces and word ends), its files
    written here: nothing can be downloaded."""
    import json

    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "!": 1, "<|endoftext|>": 2}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocab[letter], vocab[f"{letter}</w>"] = len(vocab), len(vocab) + 1
    words = root / "tokenizer-files"
    words.mkdir(parents=True, exist_ok=True)
    (words / "vocab.json").write_text(json.dumps(vocab))
    (words / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(words / "vocab.json"), str(words / "merges.txt"), model_max_length=77)


def make_sd_inpaint_folder(root: Path, seed: int = 0) -> Path:
    """A tiny Stable Diffusion inpainting pipeline saved by ``save_pretrained`` (components sized as
    diffusers' own tests size them)."""
    from reference_impls import usable_torchvision

    usable_torchvision()
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=9,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32)
    vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)
    text = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37,
                                        num_attention_heads=4, num_hidden_layers=2, pad_token_id=1, vocab_size=1000))
    pipeline = StableDiffusionInpaintPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=clip_tokenizer(root),
                                              scheduler=PNDMScheduler(skip_prk_steps=True), safety_checker=None,
                                              feature_extractor=None, requires_safety_checker=False)
    folder = root / "sd-inpaint"
    pipeline.save_pretrained(folder)
    return folder


def make_sdxl_inpaint_folder(root: Path, seed: int = 0) -> Path:
    """A tiny SDXL inpainting pipeline saved by ``save_pretrained``: two text encoders (the second
    with a projection), a UNet with SDXL's text-and-time conditioning, components sized as diffusers'
    own SDXL inpainting tests size them."""
    from reference_impls import usable_torchvision

    usable_torchvision()
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
                                use_linear_projection=True, addition_embed_type="text_time",
                                addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
                                projection_class_embeddings_input_dim=72, cross_attention_dim=64)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                       beta_schedule="scaled_linear", timestep_spacing="leading")
    vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)
    config = CLIPTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37,
                            num_attention_heads=4, num_hidden_layers=2, pad_token_id=1, vocab_size=1000,
                            hidden_act="gelu", projection_dim=32)
    tokenizer = clip_tokenizer(root)
    pipeline = StableDiffusionXLInpaintPipeline(vae=vae, text_encoder=CLIPTextModel(config), tokenizer=tokenizer,
                                                text_encoder_2=CLIPTextModelWithProjection(config),
                                                tokenizer_2=tokenizer, unet=unet, scheduler=scheduler,
                                                image_encoder=None, feature_extractor=None,
                                                requires_aesthetics_score=True)
    folder = root / "sdxl-inpaint"
    pipeline.save_pretrained(folder)
    return folder


def make_flux_fill_folder(root: Path, seed: int = 0) -> Path:
    """A tiny FLUX.1 Fill pipeline saved by ``save_pretrained``, sized as diffusers' own FluxFill
    tests size it; the T5 tokenizer is a small Unigram vocabulary written here."""
    from reference_impls import usable_torchvision

    usable_torchvision()
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxFillPipeline, FluxTransformer2DModel
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel, T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    unigram = Tokenizer(models.Unigram(pieces + [(c, -3.0) for c in "abcdefghijklmnopqrstuvwxyz"], unk_id=2))
    unigram.pre_tokenizer, unigram.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    t5_tokenizer = T5TokenizerFast(tokenizer_object=unigram, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                   extra_ids=0)
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=20, out_channels=8, num_layers=1,
                                         num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                                         joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8])
    clip = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37,
                                        num_attention_heads=4, num_hidden_layers=2, pad_token_id=1, vocab_size=1000,
                                        hidden_act="gelu", projection_dim=32))
    t5 = T5EncoderModel(T5Config(vocab_size=64, d_model=32, d_ff=37, d_kv=8, num_layers=2, num_heads=4))
    vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
                        latent_channels=2, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.0609, scaling_factor=1.5035)
    pipeline = FluxFillPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), text_encoder=clip, text_encoder_2=t5,
                                tokenizer=clip_tokenizer(root), tokenizer_2=t5_tokenizer, transformer=transformer,
                                vae=vae)
    folder = root / "flux-fill"
    pipeline.save_pretrained(folder)
    return folder


def make_kandinsky_inpaint_folder(root: Path, seed: int = 0) -> Path:
    """A tiny Kandinsky 2.2 inpainting pipeline (prior and decoder in one combined folder) saved by
    ``save_pretrained``, sized as diffusers' own Kandinsky 2.2 tests size it."""
    from reference_impls import usable_torchvision

    usable_torchvision()
    from diffusers import (
        DDIMScheduler,
        KandinskyV22InpaintCombinedPipeline,
        PriorTransformer,
        UnCLIPScheduler,
        UNet2DConditionModel,
        VQModel,
    )
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    torch.manual_seed(seed)
    text = CLIPTextModelWithProjection(CLIPTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=32, projection_dim=32,
                                                      intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                                                      pad_token_id=1, vocab_size=1000))
    prior = PriorTransformer(num_attention_heads=2, attention_head_dim=12, embedding_dim=32, num_layers=1)
    prior.clip_std = torch.nn.Parameter(torch.ones(prior.clip_std.shape))
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, image_size=224, projection_dim=32,
                                                                   intermediate_size=37, num_attention_heads=4,
                                                                   num_hidden_layers=2, patch_size=14))
    unet = UNet2DConditionModel(in_channels=9, out_channels=8, addition_embed_type="image",
                                down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
                                up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
                                mid_block_type="UNetMidBlock2DSimpleCrossAttn", block_out_channels=(32, 64),
                                layers_per_block=1, encoder_hid_dim=32, encoder_hid_dim_type="image_proj",
                                cross_attention_dim=100, attention_head_dim=4, resnet_time_scale_shift="scale_shift",
                                class_embed_type=None)
    movq = VQModel(block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
                   in_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=8, norm_type="spatial",
                   num_vq_embeddings=12, out_channels=3, up_block_types=["AttnUpDecoderBlock2D", "UpDecoderBlock2D"],
                   vq_embed_dim=4)
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.00085, beta_end=0.012,
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")
    pipeline = KandinskyV22InpaintCombinedPipeline(
        unet=unet, scheduler=scheduler, movq=movq, prior_prior=prior, prior_image_encoder=image_encoder,
        prior_text_encoder=text, prior_tokenizer=clip_tokenizer(root),
        prior_scheduler=UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="sample",
                                        num_train_timesteps=1000, clip_sample=True, clip_sample_range=10.0),
        prior_image_processor=CLIPImageProcessor(crop_size=224, do_center_crop=True, do_normalize=True, do_resize=True,
                                                 resample=3, size=224))
    folder = root / "kandinsky-2-2-inpaint"
    pipeline.save_pretrained(folder)
    return folder
