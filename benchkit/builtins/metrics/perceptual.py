"""Perceptual metrics with pretrained ImageNet networks: ``fid``, ``kid``, ``lpips-alex``, ``lpips-vgg``.

* ``fid`` / ``kid``: Fréchet / kernel distance between Inception-v3 pool features (2048 numbers,
  TensorFlow's FID graph, :mod:`benchkit.builtins.nets.inception`) of a cell's composites and of its
  ground-truth images. Set metrics; lower is better. Gray images are repeated to three channels and
  every image is resized to 299 x 299, as FID implementations do. With a few hundred images the
  2048-dimensional covariance is poorly estimated and FID is biased upwards: compare values only
  at equal numbers of images (KID has no such bias).
* ``fid-clean``: FID with clean-fid's resize (PIL bicubic per channel in float, no quantisation);
  FID moves with the resize filter and with quantisation (clean-fid, Parmar et al. 2022), so the
  variant, its resize and its features are recorded with every score (``about``).
* ``lpips-alex`` / ``lpips-vgg``: LPIPS v0.1 per image (:mod:`benchkit.builtins.nets.lpips`), at the
  images' own size; lower is better. AlexNet needs images of at least 32 px (its last feature maps
  are then 1 x 1), VGG-16 at least 16 px.

Weights are never downloaded during a run: ``benchkit weights download NAME`` fetches them where
there is internet (:mod:`benchkit.builtins.metrics.weights`).
"""
from __future__ import annotations

import numpy as np
import torch

from benchkit.builtins.metrics.feature_stats import feature_metrics
from benchkit.builtins.metrics.pixel import raw_output
from benchkit.builtins.metrics.weights import load_into, load_state_dict
from benchkit.plugin.hookspecs import hookimpl
from benchkit.plugin.interfaces import ImageMetric, MetricContext


def as_rgb(images: torch.Tensor) -> torch.Tensor:
    """Gray images repeated to three channels; RGB passes through."""
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


CPU_CHUNK = 8  # images per network call on a CPU: activations stay cache-sized (see benchmarks/score_folder.py)


def for_device(net: torch.nn.Module, device) -> torch.nn.Module:
    """A feature network ready for inference on ``device``: channels-last memory (what oneDNN and
    cuDNN convolve fastest), evaluation mode, no gradients."""
    return net.to(device, memory_format=torch.channels_last).eval().requires_grad_(False)


def in_chunks(net, *images: torch.Tensor) -> torch.Tensor:
    """``net(*images)`` without gradients, on a CPU in chunks of :data:`CPU_CHUNK` images (on a GPU
    in one call), joined along the batch. Each image's result does not depend on the chunking."""
    with torch.no_grad():
        if images[0].device.type != "cpu":
            return net(*images)
        return torch.cat([net(*(part.contiguous(memory_format=torch.channels_last) for part in parts))
                          for parts in zip(*(x.split(CPU_CHUNK) for x in images))])


class InceptionFeatures:
    """Mixin: loads the FID Inception-v3 in ``setup``; ``features`` gives its 2048 pool features."""

    def setup(self, context: MetricContext) -> None:
        from benchkit.builtins.nets.inception import FIDInception

        net = FIDInception()
        load_into(net, load_state_dict("inception-fid", context.weights_dir), "inception-fid", ignore=("fc.",))
        self.net = for_device(net.for_inference(), context.device)
        self.seed, self.source = context.seed, ("inception-fid", str(context.weights_dir), str(context.device))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return in_chunks(self.net, as_rgb(images))


def clean_resize(images: torch.Tensor, size: int = 299) -> torch.Tensor:
    """clean-fid's resize (GaParmar/clean-fid, ``cleanfid/resize.py``, ``make_resizer("PIL", False,
    "bicubic", ...)``): each channel of each image, on the 0-255 scale in float32, resized by PIL's
    bicubic filter with no quantisation in between, clipped to [0, 255]. Returns ``N x C x size x
    size`` float32 in [0, 1] on the images' device."""
    from PIL import Image

    array = images.detach().float().cpu().numpy() * 255
    out = np.stack([[np.asarray(Image.fromarray(channel, mode="F").resize((size, size), Image.Resampling.BICUBIC))
                     for channel in image] for image in array]).clip(0, 255)
    return torch.from_numpy(out / 255).float().to(images.device)


INCEPTION_FEATURES = "Inception-v3 pool3, 2048 (the FID graph's weights)"
INCEPTION_METRICS = feature_metrics(
    InceptionFeatures, "", "Inception-v3 pool features",
    fid={"digits": 2, "about": {"variant": "pytorch-fid", "features": INCEPTION_FEATURES,
                                "resize": "bilinear to 299 x 299 (torch, align_corners=False)"}})
FID = INCEPTION_METRICS["fid"]


class CleanFID(FID):  # type: ignore[valid-type,misc]  # a generated class
    name = "fid-clean"
    description = "FID with clean-fid's resize: PIL bicubic per channel in float, no quantisation (set metric)"
    about = {"variant": "clean-fid", "resize": "PIL bicubic to 299 x 299 per channel, float32, clipped, not quantised",
             "features": INCEPTION_FEATURES}

    def setup(self, context: MetricContext) -> None:
        super().setup(context)
        self.source = ("inception-fid-clean", *self.source[1:])  # other inputs: not the bilinear features

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return in_chunks(lambda x: self.net(x, resize=False), clean_resize(as_rgb(images)))


class LPIPSAlex(ImageMetric):
    name = "lpips-alex"
    description = "LPIPS v0.1 distance with AlexNet features (per image, lower is better)"
    higher_is_better = False
    min_size = 32
    backbone, backbone_weights = "alex", "alexnet"

    def setup(self, context: MetricContext) -> None:
        from benchkit.builtins.nets.lpips import LPIPS

        net = LPIPS(self.backbone)
        load_into(net.features, {k.removeprefix("features."): v
                                 for k, v in load_state_dict(self.backbone_weights, context.weights_dir).items()
                                 if k.startswith("features.") and int(k.split(".")[1]) < len(net.features)},
                  self.backbone_weights)
        calibration = load_state_dict(f"lpips-{self.backbone}", context.weights_dir)
        for i in range(5):
            load_into(getattr(net, f"lin{i}"), {k.removeprefix(f"lin{i}."): v for k, v in calibration.items()
                                                 if k.startswith(f"lin{i}.")}, f"lpips-{self.backbone}")
        self.net = for_device(net, context.device)

    def score(self, prediction, target, known):
        return in_chunks(self.net, as_rgb(prediction), as_rgb(target)).double()


class LPIPSVGG(LPIPSAlex):
    name = "lpips-vgg"
    description = "LPIPS v0.1 distance with VGG-16 features (per image, lower is better)"
    min_size = 16
    backbone, backbone_weights = "vgg", "vgg16"


class KnownLPIPS(LPIPSAlex):
    """LPIPS (AlexNet, v0.1) between the method's raw output and the ground truth with the hole
    zeroed in both, as BrushBench's ``calculate_lpips`` masks them: how much the method changed the
    known region, before the composite pastes it back (BrushBench uses SqueezeNet's LPIPS; the
    network is recorded with the score)."""

    name = "known-lpips"
    description = "LPIPS (AlexNet) of the raw output vs the ground truth, the hole zeroed in both (pre-composite)"
    needs_raw_output = True
    about = {"variant": "BrushBench's masking (hole zeroed in both images)", "network": "AlexNet, LPIPS v0.1"}

    def score_batch(self, batch) -> torch.Tensor:
        raw = raw_output(batch, self.name)
        known = batch.known.to(raw.dtype)
        return in_chunks(self.net, as_rgb(raw * known), as_rgb(batch.target * known)).double()


@hookimpl
def register_metrics(register):
    for cls in (FID, CleanFID, *(INCEPTION_METRICS[k] for k in ("kid", "pids", "uids")), LPIPSAlex, LPIPSVGG,
                KnownLPIPS):
        register(cls)
