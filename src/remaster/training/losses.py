"""Losses of the fine-tuning: L1 pixel, VGG19 perceptual, and adversarial with a U-Net discriminator.

The weights and layers are Real-ESRGAN x4plus's (``options/train_realesrgan_x4plus.yml``):
L1 weight 1, perceptual weight 1 on VGG19 ``conv1_2 .. conv5_4`` (0.1, 0.1, 1, 1, 1, L1 criterion),
vanilla GAN weight 0.1 with ``UNetDiscriminatorSN``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from remaster.errors import UsageError, WeightsNotFoundError

if TYPE_CHECKING:
    from remaster.weights import WeightsManager

__all__ = ["LOSS_NAMES", "DEFAULT_LOSSES", "parse_losses", "PERCEPTUAL_LAYERS", "perceptual_loss",
           "check_perceptual_weights", "UNetDiscriminatorSN", "gan_loss"]

#: Loss terms ``--losses`` understands.
LOSS_NAMES = ("l1", "perceptual", "gan")
#: Real-ESRGAN's weights.
DEFAULT_LOSSES = "l1=1,perceptual=1,gan=0.1"
#: VGG19 layers and their weights in Real-ESRGAN's perceptual loss (before the ReLU).
PERCEPTUAL_LAYERS: Mapping[str, float] = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0,
                                          "conv5_4": 1.0}
_VGG19 = "torchvision-vgg19"


def parse_losses(text: str) -> dict[str, float]:
    """``"l1=1,perceptual=1,gan=0.1"`` → ``{"l1": 1.0, "perceptual": 1.0, "gan": 0.1}``; omitted terms are 0.

    Raises:
        UsageError: unknown term, a value that is not a non-negative number, or every weight 0.
    """
    weights = dict.fromkeys(LOSS_NAMES, 0.0)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if name not in weights:
            raise UsageError(f"unknown loss {name!r} in --losses", hint=f"use {', '.join(LOSS_NAMES)}, e.g. "
                                                                        f"\"{DEFAULT_LOSSES}\"")
        try:
            weight = float(value) if sep else float("nan")
        except ValueError:
            weight = float("nan")
        if not weight >= 0.0:
            raise UsageError(f"the weight of loss {name!r} must be a non-negative number, not {value.strip()!r}",
                             hint=f"write it as {name}=WEIGHT")
        weights[name] = weight
    if weights["l1"] == 0.0 and weights["perceptual"] == 0.0:
        raise UsageError("--losses needs l1 or perceptual above 0; the GAN loss alone does not reconstruct images")
    return weights


def check_perceptual_weights(weights_manager: WeightsManager) -> None:
    """Fail before training when the VGG19 backbone is not in ``weights_manager``'s cache (the run's manager).

    Raises:
        WeightsNotFoundError: saying how to get the weights, or to set ``perceptual=0``.
    """
    try:
        weights_manager.ensure(_VGG19)
    except WeightsNotFoundError as exc:
        raise WeightsNotFoundError(
            f"the perceptual loss needs the VGG19 ImageNet weights {_VGG19!r}, which are not in the cache",
            path=exc.path,
            hint=f"run 'remaster weights fetch {_VGG19}' (or download vgg19-dcbb9e9d.pth and run "
                 f"'remaster weights import vgg19-dcbb9e9d.pth'), or train without it: "
                 f"--losses \"l1=1,perceptual=0,gan=0.1\"",
        ) from None


def perceptual_loss(output: torch.Tensor, target: torch.Tensor, *,
                    weights_manager: WeightsManager) -> torch.Tensor:
    """Real-ESRGAN's VGG19 feature loss, through :func:`remaster.metrics.vgg_distance` (gradients reach ``output``).

    ``weights_manager`` is the run's, which VGG19 is read from.
    """
    from remaster.metrics import vgg_distance

    return vgg_distance(output, target, data_range=1.0, layers=PERCEPTUAL_LAYERS, criterion="l1", reduction="mean",
                        weights_manager=weights_manager)


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """The vanilla GAN loss (binary cross-entropy on logits), as Real-ESRGAN's ``gan_type: vanilla``."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


class UNetDiscriminatorSN(nn.Module):
    """U-Net discriminator with spectral normalisation: a real/fake logit per pixel.

    Written after Real-ESRGAN's ``UNetDiscriminatorSN`` (basicsr/archs/discriminator_arch.py,
    BSD-3-Clause): three stride-2 convolutions down, three bilinear ×2 up with skip connections, two
    more convolutions; every inner convolution spectrally normalised. Per-pixel decisions give the
    generator local feedback on textures. The input size must be a multiple of 8.
    """

    def __init__(self, in_channels: int = 3, features: int = 64, skip_connection: bool = True):
        super().__init__()
        f = features
        self.skip_connection = skip_connection

        def sn_conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Module:
            return spectral_norm(nn.Conv2d(cin, cout, kernel, stride, 1, bias=False))

        self.conv0 = nn.Conv2d(in_channels, f, 3, 1, 1)
        self.down = nn.ModuleList([sn_conv(f, 2 * f, 4, 2), sn_conv(2 * f, 4 * f, 4, 2), sn_conv(4 * f, 8 * f, 4, 2)])
        self.up = nn.ModuleList([sn_conv(8 * f, 4 * f, 3, 1), sn_conv(4 * f, 2 * f, 3, 1), sn_conv(2 * f, f, 3, 1)])
        self.extra = nn.ModuleList([sn_conv(f, f, 3, 1), sn_conv(f, f, 3, 1)])
        self.head = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [F.leaky_relu(self.conv0(x), 0.2)]
        for conv in self.down:
            skips.append(F.leaky_relu(conv(skips[-1]), 0.2))
        h = skips.pop()
        for conv in self.up:
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            h = F.leaky_relu(conv(h), 0.2)
            skip = skips.pop()
            if self.skip_connection:
                h = h + skip
        for conv in self.extra:
            h = F.leaky_relu(conv(h), 0.2)
        return self.head(h)
