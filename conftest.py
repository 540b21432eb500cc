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

# The suite must not follow this machine's own precision choice: without this, "auto" means bf16 on AVX512-BF16/AMX
# build machines and fp32 on AVX2 ones, and a suite that passes on one kind fails on the other. Every test (and every
# subprocess it starts) sees an AVX2 CPU, so "auto" is fp32 on the CPU everywhere; the bf16 paths are forced
# explicitly (the precision matrix tests), and the choice for other machines is tested by simulating them
# (tests/test_precision.py). `REMASTER_CPU_ISA=AMX make test` runs the suite as an AMX machine would choose.
os.environ.setdefault("REMASTER_CPU_ISA", "AVX2")
# compile="auto" (the default) would start a low-priority process building a compiled artifact (40-50 s of CPU for a
# real network) for the shapes a test runs, outliving the test. The suite asks for none: `auto` uses cached artifacts
# only, and the tests that exercise background builds allow them explicitly (tests/test_compile_artifacts.py).
os.environ.setdefault("REMASTER_COMPILE_BACKGROUND", "0")


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


@pytest.fixture
def process_host():
    """Sets the process-wide plugin host for one test: ``process_host(host)`` (``None``: a fresh one is made on the
    next ``get_host()``); returns ``host``. The host the process had comes back afterwards."""
    from remaster.plugin.host import replace_host

    previous = replace_host(None)
    replace_host(previous)

    def use(host):
        replace_host(host)
        return host

    yield use
    replace_host(previous)
