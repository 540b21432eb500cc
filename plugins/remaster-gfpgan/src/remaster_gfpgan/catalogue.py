"""The face models and detectors this plugin knows, and the weights behind them.

Plain data, so registering is cheap. Every file is fetched from its official
URL or imported by the user, and checked against its sha256 before it is read;
a file without a published sha256 must also hold the network its ``check``
names before its hash is pinned on first use.
"""

from __future__ import annotations

from remaster.plugin import WeightsSpec

_GFPGAN = "https://github.com/TencentARC/GFPGAN/releases/download"
_FACEXLIB = "https://github.com/xinntao/facexlib/releases/download"
_GFPGAN_LICENSE = "Apache-2.0 with third-party model terms (GFPGAN, Tencent ARC)"
_FACEXLIB_LICENSE = "MIT (facexlib, Xintao Wang)"
_CHECKS = "remaster_gfpgan.checks"  # what each file must hold; imported only when a file is checked

#: ``version`` parameter value → weights name.
RESTORERS: dict[str, str] = {
    "1.3": "gfpgan-1.3",
    "1.4": "gfpgan-1.4",
    "restoreformer": "restoreformer",
}

#: ``detector`` parameter value → weights name (``haar`` needs none).
RETINAFACE: dict[str, str] = {
    "retinaface": "retinaface-resnet50",
    "retinaface-mobile": "retinaface-mobilenet0.25",
}

PARSING = "parsenet"

WEIGHTS: tuple[WeightsSpec, ...] = (
    WeightsSpec(
        name="gfpgan-1.3", filename="GFPGANv1.3.pth", url=f"{_GFPGAN}/v1.3.0/GFPGANv1.3.pth",
        sha256="c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70", license=_GFPGAN_LICENSE,
        description="GFPGAN v1.3 (GFPGANv1Clean): natural-looking restored faces",
        check=f"{_CHECKS}:gfpgan",
    ),
    WeightsSpec(
        name="gfpgan-1.4", filename="GFPGANv1.4.pth", url=f"{_GFPGAN}/v1.3.4/GFPGANv1.4.pth",
        sha256="e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad", license=_GFPGAN_LICENSE,
        description="GFPGAN v1.4 (GFPGANv1Clean): more detail than v1.3, the default",
        check=f"{_CHECKS}:gfpgan",
    ),
    # No published hash found for these two: pinned on first use, once the check passed (see 'remaster weights list').
    WeightsSpec(
        name="restoreformer", filename="RestoreFormer.pth", url=f"{_GFPGAN}/v1.3.4/RestoreFormer.pth",
        license="Apache-2.0 (RestoreFormer, Zhouxia Wang)",
        description="RestoreFormer face restorer, as distributed with GFPGAN",
        check=f"{_CHECKS}:restoreformer",
    ),
    WeightsSpec(
        name="retinaface-resnet50", filename="detection_Resnet50_Final.pth",
        url=f"{_FACEXLIB}/v0.1.0/detection_Resnet50_Final.pth",
        sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d", license=_FACEXLIB_LICENSE,
        description="RetinaFace (ResNet-50) face detector with 5 landmarks, as GFPGAN uses",
        check=f"{_CHECKS}:retinaface_resnet50",
    ),
    WeightsSpec(
        name="retinaface-mobilenet0.25", filename="detection_mobilenet0.25_Final.pth",
        url=f"{_FACEXLIB}/v0.1.0/detection_mobilenet0.25_Final.pth", license=_FACEXLIB_LICENSE,
        description="RetinaFace (MobileNet 0.25) face detector: small and fast, less accurate",
        check=f"{_CHECKS}:retinaface_mobilenet",
    ),
    WeightsSpec(
        name="parsenet", filename="parsing_parsenet.pth", url=f"{_FACEXLIB}/v0.2.2/parsing_parsenet.pth",
        sha256="3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2", license=_FACEXLIB_LICENSE,
        description="ParseNet face parsing: a paste-back mask that follows the face outline",
        check=f"{_CHECKS}:parsenet",
    ),
)
