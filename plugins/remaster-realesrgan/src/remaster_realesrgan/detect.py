"""What a model file holds, from its state dict's layout alone: the cheap step before any network is built.

spandrel's ``MAIN_REGISTRY`` detects architectures by key names and tensor
shapes. Here those come from :func:`remaster.weights.load_state_dict_layout`
(tensors on torch's ``meta`` device, no data read), and the detected
architecture is instantiated on the ``meta`` device too, which gives the
descriptor's scale, channels, size requirements and dtypes without allocating
or loading a single weight. The real network is built from the file when a
pipeline prepares the stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import spandrel
import torch

from remaster.weights import load_state_dict_layout

__all__ = ["detect_network"]


def detect_network(path: Path) -> tuple[Any, bool] | None:
    """The spandrel descriptor of the network in ``path``, or ``None`` if spandrel knows no such architecture.

    Returns:
        ``(descriptor, built)``: ``built`` is false for the usual ``meta``-device
        descriptor (its ``.model`` holds no weights; only its attributes are for
        use), true when an architecture could not be instantiated on ``meta``
        and the network had to be built from the file after all.

    Raises:
        UnsafeWeightsError, WeightsError: as :func:`remaster.weights.load_state_dict`.
    """
    layout = spandrel.canonicalize_state_dict(load_state_dict_layout(path))
    support = next((s for s in spandrel.MAIN_REGISTRY.architectures("detection") if s.detect(layout)), None)
    if support is None:
        return None
    try:
        with torch.device("meta"):
            descriptor = support.architecture.load(layout)
    except Exception:  # an architecture whose loader reads tensor values: build it for real, once
        from .stage import load_descriptor

        return load_descriptor(path), True
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        return None
    return descriptor, False
