"""Precision is chosen per stage and per image, and never breaks a pipeline.

Every case here forces its precision or simulates the host's capability, so the
suite checks the same thing on AVX2, AVX512-BF16, AMX and GPU machines alike.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import remaster.pipeline.devices as devices
from remaster import Image, Remasterer, RunContext, Stage, StageInfo, Tiling, UsageError
from remaster.io.image import Meta
from remaster.pipeline.devices import Capability, choose_precision, resolve_precision

CPU = torch.device("cpu")
CUDA = torch.device("cuda:0")
FP32, BF16, FP16 = torch.float32, torch.bfloat16, torch.float16
ALL = (FP32, BF16, FP16)

AVX2 = Capability(cpu_isa="AVX2")
AVX512 = Capability(cpu_isa="AVX512")  # AVX512 without its BF16 extension: still emulated
AVX512_BF16 = Capability(cpu_isa="AVX512-BF16")
AMX = Capability(cpu_isa="AMX")
AMPERE = Capability(cpu_isa="AVX2", cuda_bf16=True)
TURING = Capability(cpu_isa="AVX2", cuda_bf16=False)


# -- the auto choice, for each kind of machine ------------------------------------

@pytest.mark.parametrize("capability, device, supported, bit_depth, expected", [
    # CPUs: bf16 only where it is native; fp32 on AVX2 (emulated bf16 is slower than fp32)
    (AVX2, CPU, ALL, 8, FP32),
    (AVX512, CPU, ALL, 8, FP32),
    (AVX512_BF16, CPU, ALL, 8, BF16),
    (AMX, CPU, ALL, 8, BF16),
    (AMX, CPU, (FP32,), 8, FP32),            # a plain filter stays in fp32
    (AMX, CPU, (FP32, FP16), 8, FP32),       # fp16 does not run on the CPU
    # GPUs: fp16 first; bf16 for stages without fp16 where the GPU has it
    (AMPERE, CUDA, ALL, 8, FP16),
    (AMPERE, CUDA, (FP32, BF16), 8, BF16),
    (TURING, CUDA, (FP32, BF16), 8, FP32),
    (AMPERE, CUDA, (FP32,), 8, FP32),
    # deep inputs keep fp32 everywhere: bf16's 8-bit mantissa would quantise a 16-bit photo
    (AMX, CPU, ALL, 16, FP32),
    (AVX512_BF16, CPU, ALL, 32, FP32),
    (AMPERE, CUDA, ALL, 16, FP32),
    # a stage without fp32 takes what it has
    (AVX2, CPU, (BF16,), 16, BF16),
])
def test_auto_choice(capability, device, supported, bit_depth, expected):
    choice = choose_precision("auto", device, supported, bit_depth=bit_depth, capability=capability)
    assert choice.dtype is expected
    assert choice.note is None  # auto never overrides a request, so there is nothing to tell


@pytest.mark.parametrize("capability", [AVX2, AMX, AMPERE])
def test_an_explicit_request_applies_whatever_the_host(capability):
    # Explicit requests ignore the host's speed: bf16 on AVX2 is slow but it is what was asked for.
    assert choose_precision("bf16", CPU, ALL, capability=capability).dtype is BF16
    assert choose_precision("fp32", CPU, ALL, capability=capability).dtype is FP32
    assert choose_precision("fp16", CUDA, ALL, capability=capability).dtype is FP16
    assert choose_precision("bf16", CPU, ALL, bit_depth=16, capability=capability).dtype is BF16


def test_an_explicit_request_a_stage_lacks_runs_in_fp32_and_says_why():
    choice = choose_precision("bf16", CPU, (FP32,), capability=AMX)
    assert choice.dtype is FP32 and choice.name == "fp32"
    assert choice.note == "supports only fp32; runs in fp32"
    # a stage that had to fall back to the CPU in a CUDA pipeline
    choice = choose_precision("fp16", CPU, ALL, capability=AMPERE)
    assert choice.dtype is FP32 and "fp16 does not run on the CPU" in choice.note


def test_a_stage_with_no_precision_for_its_device_is_a_usage_error():
    with pytest.raises(UsageError, match=r"no precision this stage supports \(fp16\) runs on cpu"):
        choose_precision("auto", CPU, (FP16,), capability=AMX)


@pytest.mark.parametrize("name", ["fp8", "double", "", "float32"])
def test_unknown_names(name):
    with pytest.raises(UsageError, match="unknown precision"):
        choose_precision(name, CPU, ALL)


def test_the_strict_form_for_training_still_refuses():
    with pytest.raises(UsageError, match="fp16 is not supported on CPU"):
        resolve_precision("fp16", CPU, ALL)
    with pytest.raises(UsageError, match="does not support bf16"):
        resolve_precision("bf16", CPU, (FP32,))


@pytest.mark.parametrize("isa, amx, avx512_bf16, expected", [
    ("AVX2", False, False, "AVX2"),
    ("AVX512", False, True, "AVX512-BF16"),
    ("AVX512", True, True, "AMX"),
])
def test_capability_detection(monkeypatch, isa, amx, avx512_bf16, expected):
    monkeypatch.setattr(devices, "_has_amx", lambda: amx)
    monkeypatch.setattr(devices, "_has_avx512_bf16", lambda: avx512_bf16)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: isa)
    assert devices._cpu_isa() == expected
    assert Capability(cpu_isa=devices._cpu_isa()).native_cpu_bf16 is (expected != "AVX2")


# -- in a pipeline ----------------------------------------------------------------

class Recorder(Stage):
    """Records the precision it was given; supports what ``dtypes`` says."""

    def __init__(self, name: str, dtypes: tuple[torch.dtype, ...]):
        super().__init__()
        self.name = name
        self.info = StageInfo(dtypes=dtypes, tiling=Tiling.UNSUPPORTED)
        self.seen: list[torch.dtype] = []

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        self.seen.append(ctx.dtype)
        return pixels.clone()


@pytest.fixture
def native_bf16_host(monkeypatch):
    """This process believes it runs on an AMX CPU, whatever it runs on."""
    monkeypatch.setattr(devices, "_cpu_capability", lambda: "AMX")


@pytest.fixture
def avx2_host(monkeypatch):
    monkeypatch.setattr(devices, "_cpu_capability", lambda: "AVX2")


def rgb(bits: int, size: int = 6) -> Image:
    pixels = torch.rand((1, 3, size, size), generator=torch.Generator().manual_seed(0))
    return Image(pixels, meta=Meta(bit_depth=bits))


def test_a_plain_filter_runs_in_fp32_inside_a_bf16_pipeline(caplog):
    network, plain = Recorder("network", (FP32, BF16)), Recorder("plain", (FP32,))
    remasterer = Remasterer([network, plain], device="cpu", precision="bf16")
    with caplog.at_level(logging.WARNING):
        first = remasterer.run_image(rgb(8))
        remasterer.run_image(rgb(8))
    assert network.seen == [BF16, BF16] and plain.seen == [FP32, FP32]
    notes = [r.getMessage() for r in caplog.records if "supports only fp32" in r.getMessage()]
    assert notes == ["plain: supports only fp32; runs in fp32 (--precision bf16 applies to the stages that support it)"]
    assert first.meta.extras["stages"] == [
        {"stage": "network", "device": "cpu", "precision": "bf16"},
        {"stage": "plain", "device": "cpu", "precision": "fp32"},
    ]


def test_lanczos_after_a_bf16_request_no_longer_fails():
    """Item 1 of issue 12: '--precision bf16' with a fp32-only stage was 'lanczos: this stage does not support bf16'."""
    out = Remasterer("lanczos(scale=2)", device="cpu", precision="bf16").run_image(rgb(8))
    assert out.size == (12, 12)
    assert out.meta.extras["stages"][0]["precision"] == "fp32"


def test_auto_keeps_fp32_for_deep_images_per_image(native_bf16_host):
    network = Recorder("network", (FP32, BF16))
    remasterer = Remasterer([network], device="cpu")
    assert remasterer.run_image(rgb(8)).meta.extras["stages"][0]["precision"] == "bf16"
    assert remasterer.run_image(rgb(16)).meta.extras["stages"][0]["precision"] == "fp32"
    assert remasterer.run_image(rgb(32)).meta.extras["stages"][0]["precision"] == "fp32"
    assert network.seen == [BF16, FP32, FP32]


def test_auto_on_an_avx2_host_is_fp32(avx2_host):
    network = Recorder("network", (FP32, BF16))
    Remasterer([network], device="cpu").run_image(rgb(8))
    assert network.seen == [FP32]


def test_describe_names_each_stages_precision(native_bf16_host):
    remasterer = Remasterer([Recorder("network", (FP32, BF16)), Recorder("plain", (FP32,))], device="cpu")
    assert remasterer.describe() == "network [bf16] | plain [fp32] (fp32 for 16-bit and float inputs)"
    assert [c.name for c in remasterer.precisions(16)] == ["fp32", "fp32"]


def test_the_fp32_retry_is_what_the_report_says_ran():
    class OverflowsInBf16(Stage):
        name = "overflows"
        info = StageInfo(dtypes=(FP32, BF16), tiling=Tiling.UNSUPPORTED)

        def run(self, pixels, ctx):
            return pixels * float("nan") if ctx.dtype == BF16 else pixels.clone()

    out = Remasterer([OverflowsInBf16()], device="cpu", precision="bf16").run_image(rgb(8))
    assert out.meta.extras["stages"][0]["precision"] == "fp32"


def test_a_numpy_input_keeps_its_bit_depth_for_the_choice(native_bf16_host):
    network = Recorder("network", (FP32, BF16))
    remasterer = Remasterer([network], device="cpu")
    remasterer.run(np.zeros((4, 4, 3), np.uint8))
    remasterer.run(np.zeros((4, 4, 3), np.uint16))
    assert network.seen == [BF16, FP32]


def test_the_cpu_kind_can_be_set_from_the_environment(monkeypatch):
    monkeypatch.setenv("REMASTER_CPU_ISA", "amx")
    assert devices.host_capability().native_cpu_bf16
    assert choose_precision("auto", CPU, ALL).dtype is BF16
    assert "AMX per REMASTER_CPU_ISA; detected " in devices.describe_device(CPU)
    monkeypatch.setenv("REMASTER_CPU_ISA", "AVX2")
    assert choose_precision("auto", CPU, ALL).dtype is FP32


def test_the_suite_runs_as_an_avx2_machine_whatever_it_runs_on():
    """conftest.py sets it, so that no test follows this host's own auto choice (bf16 here, fp32 there)."""
    import os

    assert os.environ.get("REMASTER_CPU_ISA")
    assert devices.host_capability().cpu_isa == os.environ["REMASTER_CPU_ISA"].upper()
