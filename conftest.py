"""Test-session set-up shared by tests/ and the plugins' tests."""

from __future__ import annotations

import os
import sys

import pytest


def _alias_functional_tensor() -> None:
    """Let the test-only peers (basicsr, realesrgan; requirements-peers.txt) import.

    basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor``, which
    torchvision removed in 0.17; ``rgb_to_grayscale``, the one name it takes
    from there, lives on in ``torchvision.transforms.functional``. Test code
    only: remaster itself never imports the peers.
    """
    name = "torchvision.transforms.functional_tensor"
    if name in sys.modules:
        return
    import torchvision.transforms.functional as functional

    try:
        __import__(name)  # an older torchvision still has the real module
    except ImportError:
        sys.modules[name] = functional


_alias_functional_tensor()


@pytest.fixture(scope="session", autouse=True)
def _private_weights_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep the tests' weights (converted once per session) out of the user's cache."""
    previous = os.environ.get("REMASTER_CACHE")
    os.environ["REMASTER_CACHE"] = str(tmp_path_factory.mktemp("remaster-cache"))
    yield
    if previous is None:
        os.environ.pop("REMASTER_CACHE", None)
    else:
        os.environ["REMASTER_CACHE"] = previous
