"""What each face weights file must hold: the ``check`` functions of the catalogue's specs.

The weights manager imports this module only when it checks a file (before
pinning a hash on first use, and in ``remaster weights verify``), so that
registering the plugin stays cheap. Each check reads the file the way the
stage will, with the same safe loaders.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from remaster import WrongWeightsError
from remaster.weights import expect_network, load_state_dict

# Top-level modules of facexlib's networks, for telling the files apart where facexlib is not installed.
_RETINAFACE = ("fpn.", "ssh1.", "ssh2.", "ssh3.", "ClassHead.", "BboxHead.", "LandmarkHead.")
_BACKBONES = {"resnet50": "body.layer1.", "mobile0.25": "body.stage1."}
_PARSENET = ("encoder.", "body.", "decoder.", "out_img_conv.", "out_mask_conv.")


def gfpgan(path: Path) -> None:
    """A GFPGANv1Clean network (GFPGAN v1.3, v1.4)."""
    expect_network(path, "GFPGAN")


def restoreformer(path: Path) -> None:
    """A RestoreFormer network."""
    expect_network(path, "RestoreFormer")


def retinaface_resnet50(path: Path) -> None:
    """facexlib's RetinaFace with the ResNet-50 backbone."""
    _retinaface(path, "resnet50")


def retinaface_mobilenet(path: Path) -> None:
    """facexlib's RetinaFace with the MobileNet 0.25 backbone."""
    _retinaface(path, "mobile0.25")


def parsenet(path: Path) -> None:
    """facexlib's ParseNet face parser (512×512, 19 classes)."""
    state = load_state_dict(path)
    try:
        from facexlib.parsing.parsenet import ParseNet
    except ImportError:  # the exact test needs facexlib; without it, the layout must at least be ParseNet's
        _require_parts(path, state, _PARSENET, "ParseNet")
        return
    _load_strict(path, ParseNet(in_size=512, out_size=512, parsing_ch=19), state, "ParseNet")


def _retinaface(path: Path, network: str) -> None:
    state = {key.removeprefix("module."): value for key, value in load_state_dict(path).items()}
    what = f"RetinaFace {network}"
    try:
        from facexlib.detection.retinaface import RetinaFace
    except ImportError:
        _require_parts(path, state, (*_RETINAFACE, _BACKBONES[network]), what)
        return
    import torch

    with warnings.catch_warnings():  # facexlib builds ResNet-50 with torchvision's deprecated pretrained=False
        warnings.simplefilter("ignore", UserWarning)
        model = RetinaFace(network_name=network, half=False, device=torch.device("cpu"))
    _load_strict(path, model, state, what)


def _load_strict(path: Path, model: Any, state: dict[str, Any], what: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WrongWeightsError(f"does not hold {what} weights ({str(exc).splitlines()[0].rstrip(':. ')})",
                                path=path) from None


def _require_parts(path: Path, state: dict[str, Any], parts: tuple[str, ...], what: str) -> None:
    missing = [part for part in parts if not any(key.startswith(part) for key in state)]
    if missing:
        raise WrongWeightsError(f"does not hold {what} weights (no {missing[0]}* tensors)", path=path)
