"""Device and precision choice."""

from __future__ import annotations

import pytest
import torch

import remaster.devices as devices
from remaster.devices import (
    autocast_context,
    cpu_supports_fast_bf16,
    describe_device,
    resolve_device,
    resolve_precision,
)
from remaster.errors import UsageError

CPU = torch.device("cpu")
CUDA = torch.device("cuda:0")
ALL = (torch.float32, torch.bfloat16, torch.float16)


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


def test_auto_precision_on_this_cpu():
    dtype = resolve_precision("auto", CPU, ALL)
    if cpu_supports_fast_bf16():
        assert dtype is torch.bfloat16
    else:  # this project's AVX2 build machine
        assert dtype is torch.float32


def test_auto_precision_picks_bf16_on_fast_cpu(monkeypatch):
    monkeypatch.setattr(devices, "cpu_supports_fast_bf16", lambda: True)
    assert resolve_precision("auto", CPU, ALL) is torch.bfloat16
    assert resolve_precision("auto", CPU, (torch.float32,)) is torch.float32


def test_auto_precision_avoids_bf16_on_slow_cpu(monkeypatch):
    monkeypatch.setattr(devices, "cpu_supports_fast_bf16", lambda: False)
    assert resolve_precision("auto", CPU, ALL) is torch.float32


def test_auto_precision_on_cuda(fake_cuda, monkeypatch):
    assert resolve_precision("auto", CUDA, ALL) is torch.float16
    assert resolve_precision("auto", CUDA, (torch.float32, torch.bfloat16)) is torch.bfloat16
    assert resolve_precision("auto", CUDA, (torch.float32,)) is torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", CUDA, (torch.float32, torch.bfloat16)) is torch.float32


def test_explicit_precisions():
    assert resolve_precision("bf16", CPU, ALL) is torch.bfloat16
    assert resolve_precision("FP32", CPU, ALL) is torch.float32
    assert resolve_precision("fp16", CUDA, ALL) is torch.float16


def test_unsupported_precision_names_what_the_stage_supports():
    with pytest.raises(UsageError, match="does not support bf16") as info:
        resolve_precision("bf16", CPU, (torch.float32,))
    assert "fp32" in str(info.value)


def test_fp16_on_cpu_is_refused():
    with pytest.raises(UsageError, match="fp16 is not supported on CPU, use bf16 or fp32"):
        resolve_precision("fp16", CPU, ALL)


@pytest.mark.parametrize("name", ["fp8", "double", "", "float32"])
def test_invalid_precision_names(name):
    with pytest.raises(UsageError, match="unknown precision"):
        resolve_precision(name, CPU, ALL)


def test_auto_precision_for_stage_without_fp32():
    assert resolve_precision("auto", CPU, (torch.bfloat16,)) is torch.bfloat16
    with pytest.raises(UsageError):
        resolve_precision("auto", CPU, (torch.float16,))


def test_autocast_context():
    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with autocast_context(CPU, torch.float32):
        assert layer(x).dtype is torch.float32
    with autocast_context(CPU, torch.bfloat16):
        assert layer(x).dtype is torch.bfloat16


def test_cpu_detection_is_cached_and_boolean():
    assert isinstance(cpu_supports_fast_bf16(), bool)
    assert cpu_supports_fast_bf16() is cpu_supports_fast_bf16()


def test_describe_cpu():
    text = describe_device(CPU)
    assert text.startswith("cpu (") and "thread" in text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_describe_cuda():
    assert describe_device(torch.device("cuda")).startswith("cuda:")
