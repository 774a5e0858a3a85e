"""Cost of each metric: seconds for N composites, on the embedded default (32x32 gray) or on RGB images of a size.

    python benchmarks/metric_cost.py [--n 512] [--device cpu] [--metrics psnr,ssim,...]
    python benchmarks/metric_cost.py --size 256 --n 32 \
        --metrics psnr,ssim,lpips-alex,fid,fd-dinov2,clip-score,known-lpips,known-mse

With ``--size``, the images are N random RGB images of that side (a metric's cost does not depend on
their content), with a caption each for clip-score and the composites as raw outputs for the
known-region metrics. fd-dinov2 and clip-score get full-size random networks (DINOv2 ViT-L/14,
CLIP ViT-L/14, built by transformers from their published configurations, saved as the published
folders).
The networks of fid/kid/lpips-* get random weights written in the published files' format to a
temporary folder (their cost does not depend on the values; nothing is downloaded). The classifier
metrics use the shipped Fashion-MNIST classifier. Each metric is set up once (not timed), then
timed over all N images in batches of 256, as `benchkit score` does, each alone (no cached
features); a last row times them all together, as a run scores them, sharing the features of a
network between the metrics that use it.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchkit.builtins.metrics.weights import WEIGHTS
from benchkit.builtins.nets.inception import FIDInception
from benchkit.builtins.nets.lpips import LPIPS
from benchkit.plugin.registry import Registry
from benchkit.run.evaluation import compute_sets, update
from benchkit.run.inputs import Inputs
from benchkit.run.tasks import prepare_metrics


def write_random_weights(folder: Path) -> None:
    inception = FIDInception().state_dict()  # the published file also holds the 1008-class head, which FID ignores
    inception |= {"fc.weight": torch.randn(1008, 2048) * 0.01, "fc.bias": torch.zeros(1008)}
    torch.save(inception, folder / WEIGHTS["inception-fid"].filename)
    for backbone, name in (("alex", "alexnet"), ("vgg", "vgg16")):
        net = LPIPS(backbone)
        torch.save(net.backbone_state(), folder / WEIGHTS[name].filename)
        torch.save({k: v.abs() for k, v in net.state_dict().items() if k.startswith("lin")},
                   folder / WEIGHTS[f"lpips-{backbone}"].filename)
    # runs check weights files by their published digests: accept these random ones for this process only
    for name, entry in list(WEIGHTS.items()):
        if entry.files or not (folder / entry.filename).is_file():  # folders (no published digest), absent files
            continue
        digest = hashlib.sha256((folder / entry.filename).read_bytes()).hexdigest()
        WEIGHTS[name] = dataclasses.replace(entry, sha256=digest)


def write_random_foundation_models(folder: Path, names: list[str]) -> None:
    """DINOv2 ViT-L/14 and CLIP ViT-L/14 with random weights, in the folders benchkit reads."""
    from published_fixtures import clip_tokenizer
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        Dinov2Config,
        Dinov2Model,
    )

    if "fd-dinov2" in names:  # facebook/dinov2-large's configuration
        config = Dinov2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                              patch_size=14, image_size=518, layerscale_value=1.0)
        Dinov2Model(config).save_pretrained(folder / WEIGHTS["dinov2-large"].filename)
    if "clip-score" in names:  # openai/clip-vit-large-patch14's configuration
        config = CLIPConfig(text_config={"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
                                         "num_hidden_layers": 12, "max_position_embeddings": 77},
                            vision_config={"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                                           "num_hidden_layers": 24, "image_size": 224, "patch_size": 14},
                            projection_dim=768)
        target = folder / WEIGHTS["clip-vit-large-patch14"].filename
        CLIPModel(config).save_pretrained(target)
        CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=clip_tokenizer(folder)).save_pretrained(target)


def score(metrics, composite, truth, known, labels, batch_size, device, texts=None):
    """Every metric over the images, set metrics computed from their states (as a cell's writer does)."""
    scores = update(metrics, composite, truth, known, labels, batch_size, device, raw=composite,
                    texts=texts)
    sets = {name: m for name, m in metrics.items() if m.level == "set" and name in scores.states}
    compute_sets(sets, scores.states, scores.errors)
    return scores


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from reference_impls import usable_torchvision  # transformers imports torchvision, whose wheel may not match

    usable_torchvision()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--metrics", default="psnr,ssim,class-acc,fid-fmnist,kid-fmnist,lpips-alex,lpips-vgg,fid,kid")
    parser.add_argument("--size", type=int, default=0, help="RGB images of this side instead of the embedded default")
    args = parser.parse_args()
    registry = Registry()
    inputs = Inputs(registry)
    split = inputs.split("fashion-mnist-mini", None, args.n)
    if args.size:
        from benchkit.run.inputs import LoadedSplit

        images = torch.nn.functional.interpolate(torch.rand(args.n, 3, 8, 8), size=args.size, mode="bicubic")
        split = LoadedSplit(split.dataset, images.clamp(0, 1), None, None)
    truth = split.images
    composite = (truth + 0.1 * torch.randn_like(truth)).clamp(0, 1)
    known = torch.zeros(len(truth), 1, *truth.shape[2:], dtype=torch.bool)
    known[..., : truth.shape[2] // 2, :] = True  # the top half known: the known-region metrics see pixels
    texts = [f"a photograph number {i}" for i in range(len(truth))]
    print(f"{args.n} images of {tuple(truth.shape[1:])}, device {args.device}, torch threads "
          f"{torch.get_num_threads()}")
    print(f"| metric | level | seconds for {args.n} images | ms per image |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        write_random_foundation_models(Path(folder), args.metrics.split(","))
        write_random_weights(Path(folder))
        for name in args.metrics.split(","):
            metrics, _ = prepare_metrics(inputs, [name], "fashion-mnist-mini", split, args.device, None,
                                         folder, 0)
            started = time.perf_counter()
            result = score(metrics, composite, truth, known, split.labels, 256, args.device, texts)
            seconds = time.perf_counter() - started
            if result.errors:
                raise SystemExit(f"{name} failed: {result.errors[name]}")
            print(f"| {name} | {metrics[name].level} | {seconds:.2f} | {1000 * seconds / args.n:.2f} |")
        names = args.metrics.split(",")
        metrics, _ = prepare_metrics(inputs, names, "fashion-mnist-mini", split, args.device, None, folder, 0)
        started = time.perf_counter()
        score(metrics, composite, truth, known, split.labels, 256, args.device, texts)
        seconds = time.perf_counter() - started
        print(f"| all of them in one pass (shared features) | | {seconds:.2f} | {1000 * seconds / args.n:.2f} |")


if __name__ == "__main__":
    main()
