"""Registers the built-in metrics and the weights they need, through the same hooks as third-party plugins.

Only specs live here: the functions are ``"module:function"`` strings, so numpy,
torch and torchvision behind them are imported when a metric is first
computed, and the weights files are read only then.
"""

from __future__ import annotations

from collections.abc import Callable

from remaster.plugin import Param, WeightsSpec
from remaster.plugin.hookspecs import hookimpl
from remaster.plugin.metrics import MetricSpec

__all__ = ["builtin_metric_specs", "builtin_weights_specs", "remaster_register_metrics", "remaster_register_weights"]

_TORCHVISION_LICENSE = "BSD-3-Clause (torchvision); trained on ImageNet-1k"
_LPIPS_LICENSE = "BSD-2-Clause (LPIPS, Richard Zhang et al.)"
_LPIPS_URL = "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/{}.pth"


_REDUCTION = Param("reduction", str, "none", choices=("none", "mean"), help="one value per image, or their mean")


def _common(*, y_channel: bool = True) -> tuple[Param, ...]:
    """The options most metrics share (``remaster eval`` sets them itself)."""
    crop = Param("crop_border", int, 0, min=0, help="pixels cut from each edge before measuring")
    luma = Param("y_channel", bool, False, help="measure on the BT.601 luma of RGB images")
    return (crop, luma, _REDUCTION) if y_channel else (crop, _REDUCTION)


_WINDOW = (
    Param("win_size", int, 11, min=1, help="side of the Gaussian window (odd)"),
    Param("sigma", float, 1.5, help="standard deviation of the window (positive)"),
    Param("k1", float, 0.01, help="C1 = (k1 * data_range)^2"),
    Param("k2", float, 0.03, help="C2 = (k2 * data_range)^2"),
)
_LPIPS_WEIGHTS = {"alex": ("torchvision-alexnet", "lpips-alex-v0.1"), "vgg": ("torchvision-vgg16", "lpips-vgg-v0.1")}


def builtin_metric_specs() -> list[MetricSpec]:
    """The specs of the built-in metrics; their options mirror the functions' keyword parameters (tested)."""
    m = "remaster.metrics"
    return [
        MetricSpec("psnr", f"{m}.psnr_ssim:psnr", higher_is_better=True, needs_reference=True,
                   summary="Peak signal-to-noise ratio in dB (inf for identical images)",
                   options=_common()),
        MetricSpec("ssim", f"{m}.psnr_ssim:ssim", higher_is_better=True, needs_reference=True,
                   summary="Structural similarity, 11x11 Gaussian window, as MATLAB/BasicSR (1 = identical)",
                   options=_common() + _WINDOW),
        MetricSpec("ms_ssim", f"{m}.psnr_ssim:ms_ssim", higher_is_better=True, needs_reference=True,
                   summary="Multi-scale SSIM over 5 scales (1 = identical; images of 161 px or more)",
                   options=_common() + (
                       # remaster.metrics.psnr_ssim.MS_SSIM_WEIGHTS, not imported here: that module needs torch
                       Param("weights", tuple, (0.0448, 0.2856, 0.3001, 0.2363, 0.1333),
                             help="exponent per scale, finest first; fewer for smaller images"),
                   ) + _WINDOW),
        MetricSpec("lpips", f"{m}.perceptual:lpips", higher_is_better=False, needs_reference=True,
                   summary="LPIPS v0.1 learned perceptual distance, AlexNet or VGG16 (0 = identical)",
                   weights=_LPIPS_WEIGHTS["alex"] + _LPIPS_WEIGHTS["vgg"],
                   options=(Param("net", str, "alex", choices=("alex", "vgg"), help="the backbone"), _REDUCTION),
                   weights_by_option={"net": _LPIPS_WEIGHTS}),
        MetricSpec("vgg", f"{m}.perceptual:vgg_distance", higher_is_better=False, needs_reference=True,
                   summary="VGG19 feature distance, the 'VGG loss' of SR papers (0 = identical)",
                   weights=("torchvision-vgg19",),
                   options=(Param("layers", object, ("conv5_4",),
                                  help="VGG19 layer names, or a mapping of them to weights"),
                            Param("criterion", str, "l1", choices=("l1", "l2"), help="mean absolute or squared"),
                            _REDUCTION)),
        MetricSpec("niqe", f"{m}.no_reference:niqe", higher_is_better=False, needs_reference=False,
                   summary="Natural Image Quality Evaluator, no reference, as MATLAB/BasicSR",
                   options=_common(y_channel=False)),
    ]


def builtin_weights_specs() -> list[WeightsSpec]:
    """The weights files of the perceptual metrics: official URLs; sha256 where a full one is published."""
    return [
        WeightsSpec(
            name="torchvision-vgg16", filename="vgg16-397923af.pth",
            url="https://download.pytorch.org/models/vgg16-397923af.pth",
            sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
            license=_TORCHVISION_LICENSE,
            description="VGG16 ImageNet weights (torchvision IMAGENET1K_V1), the backbone of LPIPS-VGG",
        ),
        WeightsSpec(
            # No full sha256 is published: pinned on first use. torchvision's file name carries the first
            # 8 hex digits of the genuine file's sha256 (dcbb9e9d), which 'remaster weights list' lets you compare.
            name="torchvision-vgg19", filename="vgg19-dcbb9e9d.pth",
            url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
            sha256=None,
            license=_TORCHVISION_LICENSE,
            description="VGG19 ImageNet weights (torchvision IMAGENET1K_V1), for the VGG feature distance",
        ),
        WeightsSpec(
            name="torchvision-alexnet", filename="alexnet-owt-7be5be79.pth",
            url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            sha256="7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
            license=_TORCHVISION_LICENSE,
            description="AlexNet ImageNet weights (torchvision IMAGENET1K_V1), the backbone of LPIPS",
        ),
        WeightsSpec(
            # Upstream calls both linear-layer files vgg.pth / alex.pth; the cache needs distinct names.
            # 'remaster weights import vgg.pth' still recognises the file by its sha256.
            name="lpips-vgg-v0.1", filename="lpips-v0.1-vgg.pth", url=_LPIPS_URL.format("vgg"),
            sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
            license=_LPIPS_LICENSE,
            description="LPIPS v0.1 linear layers for the VGG16 backbone (lpips/weights/v0.1/vgg.pth)",
        ),
        WeightsSpec(
            name="lpips-alex-v0.1", filename="lpips-v0.1-alex.pth", url=_LPIPS_URL.format("alex"),
            sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
            license=_LPIPS_LICENSE,
            description="LPIPS v0.1 linear layers for the AlexNet backbone (lpips/weights/v0.1/alex.pth)",
        ),
    ]


@hookimpl
def remaster_register_metrics(register: Callable[[MetricSpec], None]) -> None:
    for spec in builtin_metric_specs():
        register(spec)


@hookimpl
def remaster_register_weights(register: Callable[[WeightsSpec], None]) -> None:
    for spec in builtin_weights_specs():
        register(spec)
