"""Fixtures of the metric tests: the optional basicsr peer, test images.

basicsr (``requirements-peers.txt``, test-only) is the reference for the
SR-paper conventions; the repository's root conftest.py lets it import on
current torchvision. Parity tests skip when basicsr is not importable.
"""

from __future__ import annotations

import warnings
from types import ModuleType

import numpy as np
import pytest


def import_basicsr(module: str) -> ModuleType:
    """``basicsr.<module>``, or skip the test when basicsr is not importable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # basicsr imports deprecated scipy/torchvision names
        return pytest.importorskip(f"basicsr.{module}", reason="basicsr (test-only peer) is not importable")


@pytest.fixture(scope="session")
def basicsr_module():
    """``basicsr_module("metrics.niqe")`` imports that basicsr module, or skips the test."""
    return import_basicsr


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A 200x240 crop of scikit-image's astronaut, RGB uint8."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[40:240, 120:360])


@pytest.fixture(scope="session")
def noisy(photo: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(photo + rng.normal(0, 12, photo.shape), 0, 255).round().astype(np.uint8)
