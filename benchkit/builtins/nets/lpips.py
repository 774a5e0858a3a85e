"""LPIPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR 2018).

The distance between two images is computed from five feature maps of a pretrained network
(AlexNet: after each of its five ReLUs; VGG-16: after relu1_2, relu2_2, relu3_3, relu4_3, relu5_3):
each map is normalised to unit length along channels, the squared differences are weighted per
channel by the learned linear calibration layer ("v0.1" weights, non-negative 1x1 convolutions),
averaged over space and summed over the five layers. Inputs are scaled to [-1, 1] and then shifted
and scaled per channel by the constants of the original (``SHIFT``, ``SCALE``).

The backbone layouts and parameter names are torchvision's (``features.N.weight``), so torchvision's
published ImageNet files load as they are; the calibration layers are named ``lin0`` ... ``lin4``
(``linK.model.1.weight``), as in the published ``alex.pth`` / ``vgg.pth``.
"""
from __future__ import annotations

import torch
from torch import nn

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
ALEX_CHANNELS, VGG_CHANNELS = (64, 192, 384, 256, 256), (64, 128, 256, 512, 512)
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


def alexnet_features() -> tuple[nn.Sequential, tuple[int, ...]]:
    """AlexNet's convolutional part (torchvision's layout) and the indices of the five tapped ReLUs."""
    layers = nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU())
    return layers, (1, 4, 7, 9, 11)


def vgg16_features() -> tuple[nn.Sequential, tuple[int, ...]]:
    """VGG-16's convolutional part up to relu5_3 (torchvision's layout) and the five tapped ReLUs."""
    layers, c_in = [], 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, item, 3, padding=1), nn.ReLU()]
            c_in = item
    return nn.Sequential(*layers), (3, 8, 15, 22, 29)


class Calibration(nn.Module):
    """One layer's learned channel weights: ``model.1`` is a bias-free 1x1 convolution to 1 channel
    (``model.0`` is the original's dropout, inactive at evaluation and without parameters)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS distance with an ``"alex"`` or ``"vgg"`` backbone; ``forward(a, b)`` gives ``N`` distances
    of images in [0, 1] (``N x 3 x H x W``). Load weights with :meth:`load_backbone` and :meth:`load_calibration`."""

    def __init__(self, backbone: str = "alex") -> None:
        super().__init__()
        self.features, self.taps = alexnet_features() if backbone == "alex" else vgg16_features()
        channels = ALEX_CHANNELS if backbone == "alex" else VGG_CHANNELS
        for i, c in enumerate(channels):
            setattr(self, f"lin{i}", Calibration(c))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.register_buffer("gain", 2 / self.scale, persistent=False)
        self.register_buffer("offset", (-1 - self.shift) / self.scale, persistent=False)

    def backbone_state(self) -> dict[str, torch.Tensor]:
        return {f"features.{k}": v for k, v in self.features.state_dict().items()}

    def _maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps, x = [], torch.addcmul(self.offset, x, self.gain)  # (2x - 1 - shift) / scale in one pass
        for i, layer in enumerate(self.features[: self.taps[-1] + 1]):
            x = layer(x)
            if i in self.taps:
                maps.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return maps

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = 0
        for i, (fa, fb) in enumerate(zip(self._maps(a), self._maps(b))):
            total = total + getattr(self, f"lin{i}")((fa - fb) ** 2).mean(dim=(2, 3))
        return total.flatten()
