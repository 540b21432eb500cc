"""The upscaler stage: a spandrel network with weights from the weights manager."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from remaster import RunContext, Stage, StageError
from remaster.weights import get_manager, load_state_dict


def load_descriptor(path: Path, *, expect_scale: int | None = None) -> Any:
    """Load a super-resolution network from a weights file (safely) with spandrel.

    Raises:
        StageError: when spandrel does not recognise the file or it is not an
            image-to-image upscaler with the expected scale.
    """
    import spandrel

    state = load_state_dict(path)
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except Exception as exc:  # spandrel raises several types for unknown layouts
        raise StageError(f"not a network architecture remaster knows ({exc})", path=path,
                         hint="ESRGAN/Real-ESRGAN family .pth and .safetensors files are supported") from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise StageError(f"is a {type(descriptor).__name__}, not an image-to-image network", path=path)
    if expect_scale is not None and descriptor.scale != expect_scale:
        raise StageError(f"holds an x{descriptor.scale} network, expected x{expect_scale}", path=path,
                         hint="import the right file with 'remaster weights import FILE --name NAME'")
    descriptor.model.eval().requires_grad_(False)
    return descriptor


class SpandrelUpscaler(Stage):
    """Runs a super-resolution network at its native scale.

    The pipeline resamples to the requested ``scale``, tiles, pads and handles
    alpha; this class only builds the network once and calls it.

    Args:
        weights: Weights names in order of preference (see ``catalogue.KnownModel``).
        descriptor: An already loaded spandrel model (for ``--model PATH``).
        native_scale: The network's factor, checked against what the file holds.
        scale: Requested output factor (used by the pipeline).
        alpha: How alpha passes (used by the pipeline).
    """

    def __init__(self, *, weights: tuple[str, ...] = (), descriptor: Any = None, native_scale: int | None = None,
                 **params: Any):
        super().__init__(**params)
        self._weights = weights
        self._native_scale = native_scale
        self._descriptor: Any = descriptor

    def weights_path(self) -> Path:
        """The file this stage will load: the first cached choice, else the last producible one."""
        manager = get_manager()
        for name in self._weights:
            if manager.path(name).is_file():
                return manager.ensure(name)
        return manager.ensure(self._weights[-1])

    def prepare(self, device: torch.device, dtype: torch.dtype) -> None:
        if self._descriptor is None:
            self._descriptor = load_descriptor(self.weights_path(), expect_scale=self._native_scale)
        # Weights stay float32: the pipeline runs us under autocast for bf16/fp16, which keeps
        # accumulations and the output in a safe precision. channels_last is faster on CPU and CUDA.
        self._descriptor.model.to(device=device, memory_format=torch.channels_last)

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        return self._descriptor(pixels.contiguous(memory_format=torch.channels_last)).float()
