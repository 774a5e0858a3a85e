"""LaMa's generator: a ResNet of fast Fourier convolutions (Suvorov et al., WACV 2022).

A fast Fourier convolution (Chi et al., NeurIPS 2020) splits its channels into a local part (ordinary
convolutions) and a global part whose spectral transform convolves in the frequency domain: a 1x1
convolution over the real and imaginary parts of the 2-D real FFT (``norm="ortho"``), so every
output pixel sees the whole image. ``ratio_gin`` and ``ratio_gout`` are the global shares of the
input and output channels. The generator: reflection pad, a 7x7 FFC, strided 3x3 FFCs down, residual
blocks of two 3x3 FFCs, the two parts joined, transposed convolutions up, a 7x7 convolution and the
output activation; LaMa's big-lama has 18 blocks with 3/4 of the channels global.

Module names follow the published checkpoints (``model.N.ffc.convl2g`` ...), so their ``generator.``
state dicts load strictly. Convolutions with padding pad by reflection (``padding_type: reflect``).
"""
from __future__ import annotations

import torch
import torch.nn as nn


class FourierUnit(nn.Module):
    """A 1x1 convolution, batch norm and ReLU over the real FFT of the input, transformed back.
    The spectrum's channels are laid out real, imaginary per input channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_layer = nn.Conv2d(channels * 2, channels * 2, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(channels * 2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        spectrum = torch.fft.rfft2(x.float(), norm="ortho")  # the FFT in float32 whatever the dtype
        parts = torch.stack((spectrum.real, spectrum.imag), dim=2).reshape(batch, 2 * channels, height, -1)
        parts = self.relu(self.bn(self.conv_layer(parts.to(x.dtype))))
        parts = parts.reshape(batch, channels, 2, height, -1).float()
        spectrum = torch.complex(parts[:, :, 0], parts[:, :, 1])
        return torch.fft.irfft2(spectrum, s=(height, width), norm="ortho").to(x.dtype)


class SpectralTransform(nn.Module):
    """The global-to-global path: halve the channels, add the Fourier unit's output, restore the
    channels. (FFC's local Fourier unit, ``enable_lfu``, is off in every released LaMa model.)"""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.downsample = nn.AvgPool2d(kernel_size=2, stride=2) if stride == 2 else nn.Identity()
        half = out_channels // 2
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, half, kernel_size=1, bias=False),
                                   nn.BatchNorm2d(half), nn.ReLU(inplace=True))
        self.fu = FourierUnit(half)
        self.conv2 = nn.Conv2d(half, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.downsample(x))
        return self.conv2(x + self.fu(x))


def _conv_or_none(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                  dilation: int) -> nn.Module:
    if in_channels == 0 or out_channels == 0:
        return nn.Identity()  # a path with no channels: no weights in the checkpoint
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=False,
                     padding_mode="reflect")


class FFC(nn.Module):
    """Local and global inputs to local and global outputs: local<-local and local<-global are
    convolutions, global<-local a convolution, global<-global the spectral transform."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ratio_gin: float, ratio_gout: float,
                 stride: int = 1, padding: int = 0, dilation: int = 1) -> None:
        super().__init__()
        in_global, out_global = int(in_channels * ratio_gin), int(out_channels * ratio_gout)
        in_local, out_local = in_channels - in_global, out_channels - out_global
        conv = (kernel_size, stride, padding, dilation)
        self.ratio_gout = ratio_gout
        self.convl2l = _conv_or_none(in_local, out_local, *conv)
        self.convl2g = _conv_or_none(in_local, out_global, *conv)
        self.convg2l = _conv_or_none(in_global, out_local, *conv)
        self.convg2g = (nn.Identity() if in_global == 0 or out_global == 0
                        else SpectralTransform(in_global, out_global, stride))

    def forward(self, x: tuple[torch.Tensor, torch.Tensor | int]) -> tuple[torch.Tensor | int, torch.Tensor | int]:
        local, global_ = x
        out_local: torch.Tensor | int = 0
        out_global: torch.Tensor | int = 0
        if self.ratio_gout != 1:
            out_local = self.convl2l(local) + (0 if isinstance(global_, int) else self.convg2l(global_))
        if self.ratio_gout != 0:
            out_global = self.convl2g(local) + (0 if isinstance(global_, int) else self.convg2g(global_))
        return out_local, out_global


class FFC_BN_ACT(nn.Module):  # noqa: N801  (the checkpoints' class, named as they name it)
    """An FFC, then batch norm and the activation on each part that has channels."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ratio_gin: float, ratio_gout: float,
                 stride: int = 1, padding: int = 0, dilation: int = 1) -> None:
        super().__init__()
        self.ffc = FFC(in_channels, out_channels, kernel_size, ratio_gin, ratio_gout, stride, padding, dilation)
        out_global = int(out_channels * ratio_gout)
        self.bn_l = nn.BatchNorm2d(out_channels - out_global) if ratio_gout != 1 else nn.Identity()
        self.bn_g = nn.BatchNorm2d(out_global) if ratio_gout != 0 else nn.Identity()
        self.act_l = nn.ReLU(inplace=True) if ratio_gout != 1 else nn.Identity()
        self.act_g = nn.ReLU(inplace=True) if ratio_gout != 0 else nn.Identity()

    def forward(self, x):
        if not isinstance(x, tuple):
            x = (x, 0)
        local, global_ = self.ffc(x)
        if not isinstance(local, int):
            local = self.act_l(self.bn_l(local))
        if not isinstance(global_, int):
            global_ = self.act_g(self.bn_g(global_))
        return local, global_


class FFCResnetBlock(nn.Module):
    """Two 3x3 FFCs with the input added back to each part."""

    def __init__(self, channels: int, ratio_gin: float, ratio_gout: float) -> None:
        super().__init__()
        self.conv1 = FFC_BN_ACT(channels, channels, 3, ratio_gin, ratio_gout, padding=1)
        self.conv2 = FFC_BN_ACT(channels, channels, 3, ratio_gin, ratio_gout, padding=1)

    def forward(self, x):
        local, global_ = self.conv2(self.conv1(x))
        return x[0] + local, x[1] + global_


class ConcatTupleLayer(nn.Module):
    """The local and global parts as one tensor, local channels first."""

    def forward(self, x):
        local, global_ = x
        return local if isinstance(global_, int) else torch.cat([local, global_], dim=1)


ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class FFCResNetGenerator(nn.Module):
    """LaMa's ``ffc_resnet`` generator; ``*_conv_kwargs`` hold ``ratio_gin`` and ``ratio_gout`` as
    LaMa's configs write them (``enable_lfu: false``), the last downsampling's global output share
    being the blocks' global input share."""

    def __init__(self, input_nc: int = 4, output_nc: int = 3, ngf: int = 64, n_downsampling: int = 3,
                 n_blocks: int = 9, add_out_act: str | bool = "sigmoid", max_features: int = 1024,
                 init_conv_kwargs: dict | None = None, downsample_conv_kwargs: dict | None = None,
                 resnet_conv_kwargs: dict | None = None) -> None:
        super().__init__()
        init, down, res = (_ffc_kwargs(k) for k in (init_conv_kwargs, downsample_conv_kwargs, resnet_conv_kwargs))
        width = lambda n: min(max_features, n)  # noqa: E731
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), FFC_BN_ACT(input_nc, ngf, 7, **init)]
        for i in range(n_downsampling):
            kwargs = dict(down, ratio_gout=res["ratio_gin"]) if i == n_downsampling - 1 else down
            layers.append(FFC_BN_ACT(width(ngf * 2 ** i), width(ngf * 2 ** (i + 1)), 3, stride=2, padding=1, **kwargs))
        bottleneck = width(ngf * 2 ** n_downsampling)
        layers += [FFCResnetBlock(bottleneck, **res) for _ in range(n_blocks)]
        layers.append(ConcatTupleLayer())
        for i in range(n_downsampling):
            channels = ngf * 2 ** (n_downsampling - i)
            layers += [nn.ConvTranspose2d(width(channels), width(channels // 2), 3, stride=2, padding=1,
                                          output_padding=1),
                       nn.BatchNorm2d(width(channels // 2)), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7)]
        if add_out_act:
            layers.append(ACTIVATIONS["tanh" if add_out_act is True else str(add_out_act)]())
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _ffc_kwargs(kwargs: dict | None) -> dict:
    kwargs = dict(kwargs or {})
    return {"ratio_gin": float(kwargs.get("ratio_gin", 0)), "ratio_gout": float(kwargs.get("ratio_gout", 0))}
