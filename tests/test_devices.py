"""Device choice and description (the precision choice: test_precision.py)."""

from __future__ import annotations

import pytest
import torch

from remaster.errors import UsageError
from remaster.pipeline.devices import (
    autocast_context,
    cpu_supports_fast_bf16,
    describe_device,
    resolve_device,
)

CPU = torch.device("cpu")
CUDA = torch.device("cuda:0")


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def fake_cuda(monkeypatch):
    """Pretend there are two GPUs, for code paths that only ask about them."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


def test_auto_device_on_this_machine():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device().type == expected
    assert resolve_device("auto").type == expected


def test_auto_without_cuda_is_cpu(no_cuda):
    assert resolve_device("auto") == CPU
    assert resolve_device(" CPU ") == CPU
    assert resolve_device(torch.device("cpu")) == CPU


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_unavailable_is_a_usage_error(no_cuda, name):
    with pytest.raises(UsageError, match="CUDA is not available") as info:
        resolve_device(name)
    assert info.value.hint and "cpu" in info.value.hint


@pytest.mark.parametrize("name", ["bogus", "cuda:x", "gpu", "auto:0", "cuda:-1", ""])
def test_invalid_device_names(name):
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device(name)


def test_cuda_index_parsing(fake_cuda):
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_device("cuda") == torch.device("cuda:0")
    assert resolve_device("auto") == torch.device("cuda:0")
    with pytest.raises(UsageError, match="2 CUDA devices"):
        resolve_device("cuda:2")


def test_autocast_context():
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with autocast_context(CPU, torch.float32):
        assert layer(x).dtype is torch.float32
    with autocast_context(CPU, torch.bfloat16):
        assert layer(x).dtype is torch.bfloat16


def test_cpu_detection_is_boolean_and_stable():
    assert isinstance(cpu_supports_fast_bf16(), bool)
    assert cpu_supports_fast_bf16() is cpu_supports_fast_bf16()


def test_describe_cpu():
    text = describe_device(CPU)
    assert text.startswith("cpu (") and "thread" in text


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_describe_cuda():
    assert describe_device(torch.device("cuda")).startswith("cuda:")
