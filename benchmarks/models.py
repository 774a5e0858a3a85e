"""Speed of the published-model methods with full-size networks and random weights, in one run.

    python benchmarks/models.py [--device cpu] [--sizes 256,512] [--images 4] [--threads N] [--sd]

big-lama (18 blocks, ngf 64: the released config) is written as a ``lama:`` folder (random
weights, a Lightning-style checkpoint) and run through the method benchkit runs, against the loop
IOPaint runs (``iopaint/model/lama.py`` and ``helper.py``: per image, numpy in, symmetric padding to a
multiple of 8, ``torch.from_numpy``, the model on a batch of one, the output times 255 to uint8,
cropped): same weights, same threads, same run. It prints seconds per image for each, benchkit
at batch 1 and at ``--images``, in float32 and with ``dtype=bfloat16``, and the PSNR between the
float32 and bfloat16 outputs.

``--sd`` adds a Stable Diffusion 1.5-sized inpainting pipeline (random weights; the UNet, VAE and
CLIP text encoder at SD 1.5's published sizes; 2 denoising steps) through ``diffusers:`` with the
images as one batch, against IOPaint's loop (the pipeline called once per image).
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from published_fixtures import make_lama_folder  # noqa: E402

from benchkit.builtins.published.lama import LamaInpainter  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--device", default="cpu")
parser.add_argument("--sizes", default="256,512")
parser.add_argument("--images", type=int, default=4)
parser.add_argument("--threads", type=int, default=torch.get_num_threads())
parser.add_argument("--sd", action="store_true", help="also an SD-1.5-sized inpainting pipeline")
args = parser.parse_args()
device = torch.device(args.device)
torch.set_num_threads(args.threads)


def sync():
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int = 3) -> float:
    """Best of ``repeats`` after a warm-up (allocator, oneDNN primitives): a shared CPU's noise only
    ever adds time."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def iopaint_loop(generator, images: np.ndarray, holes: np.ndarray) -> list[np.ndarray]:
    """IOPaint's LaMa call, one image at a time (HWC uint8 image, HW uint8 mask, 255 = hole)."""
    results = []
    for image, hole in zip(images, holes):
        height, width = image.shape[:2]
        pad_h, pad_w = -height % 8, -width % 8
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
        hole = np.pad(hole, ((0, pad_h), (0, pad_w)), mode="symmetric")
        x = torch.from_numpy(np.transpose(image, (2, 0, 1)).astype("float32") / 255)[None].to(device)
        m = (torch.from_numpy(hole.astype("float32") / 255)[None, None] > 0).float().to(device)
        with torch.no_grad():
            out = generator(torch.cat([x * (1 - m), m], dim=1))
        out = m * out + (1 - m) * x
        results.append(np.clip(out[0].permute(1, 2, 0).cpu().numpy() * 255, 0, 255).astype("uint8")[:height, :width])
    return results


def lama_rows(folder: Path, size: int) -> list[tuple]:
    rng = np.random.default_rng(0)
    n = args.images
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    known = np.ones((n, size, size), bool)
    known[:, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = False
    method = LamaInpainter(str(folder))
    method.load(device)
    fast = LamaInpainter(str(folder), dtype="bfloat16")
    fast.load(device)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(device)
    k = torch.from_numpy(known)[:, None].to(device)
    loop = timed(lambda: iopaint_loop(method.model, images, (~known * 255).astype(np.uint8))) / n
    one = timed(lambda: [method.inpaint(x[i:i + 1] * k[i:i + 1], k[i:i + 1]) for i in range(n)]) / n
    batch = timed(lambda: method.inpaint(x * k, k)) / n
    bf16 = timed(lambda: fast.inpaint(x * k, k)) / n
    bf16_one = timed(lambda: [fast.inpaint(x[i:i + 1] * k[i:i + 1], k[i:i + 1]) for i in range(n)]) / n
    with torch.no_grad():
        a, b = method.inpaint(x * k, k), fast.inpaint(x * k, k)
    psnr = 10 * torch.log10(1 / ((a - b) ** 2)[~k.expand_as(a)].mean()).item()
    return [(f"big-lama {size} px", "IOPaint loop (fp32)", loop, 1.0),
            ("", "benchkit, batch 1 (fp32)", one, loop / one),
            ("", f"benchkit, batch {n} (fp32)", batch, loop / batch),
            ("", "benchkit, batch 1, dtype=bfloat16", bf16_one, loop / bf16_one),
            ("", f"benchkit, batch {n}, dtype=bfloat16 (hole PSNR vs fp32 {psnr:.1f} dB)", bf16, loop / bf16)]


def sd_pipeline_folder(root: Path) -> Path:
    """An inpainting pipeline with Stable Diffusion 1.5's component sizes and random weights."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from published_fixtures import clip_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel(sample_size=64, in_channels=9, out_channels=4, cross_attention_dim=768,
                                attention_head_dim=8, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                        num_hidden_layers=12, vocab_size=1000, max_position_embeddings=77))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                              steps_offset=1)  # SD 1.5's scheduler configuration
    pipeline = StableDiffusionInpaintPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=clip_tokenizer(root),
                                              scheduler=scheduler, safety_checker=None,
                                              feature_extractor=None, requires_safety_checker=False)
    pipeline.save_pretrained(root / "sd15-inpaint")
    return root / "sd15-inpaint"


def sd_rows(folder: Path, size: int) -> list[tuple]:
    from benchkit.builtins.published.diffusion import DiffusersInpainter

    n = args.images
    method = DiffusersInpainter(str(folder), prompt="a photograph", steps=2)
    method.seed = 0
    method.load(device)
    x = torch.rand(n, 3, size, size, device=device)
    k = torch.ones(n, 1, size, size, dtype=torch.bool, device=device)
    k[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = False

    def loop():  # IOPaint: the pipeline called once per image
        for i in range(n):
            method.model(prompt="a photograph", image=x[i:i + 1] * k[i:i + 1], mask_image=(~k[i:i + 1]).float(),
                         height=size, width=size, num_inference_steps=2, output_type="pt",
                         generator=torch.Generator(device).manual_seed(i))

    looped = timed(loop, repeats=1) / n
    batched = timed(lambda: method.inpaint(x * k, k, image_ids=list(range(n))), repeats=1) / n
    return [(f"SD-1.5-sized inpainting, {size} px, 2 steps", "IOPaint loop (one image per call)", looped, 1.0),
            ("", f"benchkit, batch {n}", batched, looped / batched)]


def main() -> None:
    from tabulate import tabulate

    with tempfile.TemporaryDirectory() as tmp:
        folder, _ = make_lama_folder(Path(tmp), ngf=64, blocks=18)
        rows = [row for size in map(int, args.sizes.split(",")) for row in lama_rows(folder, size)]
        if args.sd:
            from reference_impls import usable_torchvision

            usable_torchvision()  # transformers imports torchvision, whose wheel may not match this torch
            sd = sd_pipeline_folder(Path(tmp))
            rows += [row for size in map(int, args.sizes.split(",")) for row in sd_rows(sd, size)]
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"published models, random weights, {name}, torch {torch.__version__}")
    print(tabulate([(a, b, f"{c:.3f}", f"{d:.2f}x") for a, b, c, d in rows],
                   headers=["model", "path", "s/image", "vs loop"], tablefmt="github"))


main()
