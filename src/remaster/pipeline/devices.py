"""Device and precision choice.

The pipeline asks here which device to run on and which precision each stage
computes in, so that "auto" means the same thing everywhere and a bad request
fails early with a :class:`~remaster.errors.UsageError` rather than deep inside
a stage.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from remaster.errors import RemasterError, UsageError
from remaster.pipeline.options import precision_request
from remaster.plugin.specs import Precision, precision_name
from remaster.plugin.vulkan import VulkanDevice

__all__ = [
    "parse_device",
    "resolve_device",
    "pick_vulkan",
    "describe_target",
    "cpu_supports_fast_bf16",
    "resolve_precision",
    "choose_precision",
    "torch_dtype",
    "Capability",
    "PrecisionChoice",
    "host_capability",
    "cpu_signature",
    "autocast_context",
    "describe_device",
    "PRECISIONS",
]

#: Precision names accepted on the command line and in the API.
#: Precision names to torch dtypes (:func:`torch_dtype`); :func:`remaster.plugin.specs.precision_name` goes back.
PRECISIONS: dict[Precision, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|vulkan)(?::(\d+))?$")
_DEVICE_HINT = "use auto, cpu, cuda, cuda:N, vulkan or vulkan:N"


def parse_device(requested: str | torch.device = "auto") -> tuple[str, int | None]:
    """``"vulkan:1"`` → ``("vulkan", 1)``: the kind (auto, cpu, cuda, vulkan) and index of a device name, checked
    for its form only (nothing is probed).

    Raises:
        UsageError: for anything else (``"gpu"``, ``"cuda:x"``, ``"auto:0"``, ``"vulkan:-1"``).
    """
    text = str(requested).strip().lower()
    match = _DEVICE_RE.match(text)
    if match is None or (match.group(1) == "auto" and match.group(2) is not None):
        raise UsageError(f"unknown device {str(requested)!r}", hint=_DEVICE_HINT)
    return match.group(1), None if match.group(2) is None else int(match.group(2))


def resolve_device(requested: str | torch.device = "auto", *, torch_only: str | None = None) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"vulkan[:N]"`` into the torch device of the
    pipeline's tensors.

    ``"auto"`` picks the current CUDA device when there is one, else the CPU (a Vulkan device, which
    :func:`pick_vulkan` chooses, computes on host tensors: its pipeline's tensors are on the CPU too).

    Args:
        requested: The device name.
        torch_only: What asks, for work that only PyTorch does (``"fine-tuning"``): ``vulkan`` is then refused.

    Raises:
        UsageError: for an unknown name, a CUDA device that is not there, or ``vulkan`` with ``torch_only``.
    """
    kind, index = parse_device(requested)
    text = str(requested).strip().lower()
    if kind == "vulkan" and torch_only is not None:
        raise UsageError(f"{torch_only} runs with PyTorch, which does not compute on {text!r}",
                         hint="use {opt:device_cpu} or {opt:device_cuda}")
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind in ("cpu", "vulkan"):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError(
            f"device {text!r} was requested but CUDA is not available",
            hint="use {opt:device_cpu}, or install a CUDA build of PyTorch and check the NVIDIA driver",
        )
    if index is None:
        return torch.device("cuda", torch.cuda.current_device())
    count = torch.cuda.device_count()
    if index >= count:
        raise UsageError(
            f"device {text!r} does not exist: there {'is' if count == 1 else 'are'} {count} CUDA "
            f"device{'' if count == 1 else 's'}",
            hint=f"use cuda:0 to cuda:{count - 1}" if count > 1 else "use cuda or cuda:0",
        )
    return torch.device("cuda", index)


#: Set to ``0`` so that ``--device auto`` never looks for Vulkan devices (a driver that misbehaves when probed);
#: ``--device vulkan`` still works.
VULKAN_AUTO_ENV = "REMASTER_VULKAN_AUTO"
#: The order in which ``auto`` prefers Vulkan GPUs; CPU implementations and virtual devices are never picked.
_AUTO_VULKAN_ORDER = ("discrete", "integrated")


def pick_vulkan(requested: str | torch.device, list_devices: Callable[[], Sequence[VulkanDevice]], *,
                runs_on_vulkan: bool) -> VulkanDevice | None:
    """The Vulkan device a pipeline's Vulkan stages compute on, or ``None`` (they run where the others do).

    ``vulkan[:N]`` takes device N (default 0), CPU implementations (lavapipe, SwiftShader) included: that is how
    the Vulkan path is tested on a machine without a GPU. ``auto`` takes one only when there is no CUDA device and
    ``runs_on_vulkan`` (a stage of the pipeline declares :attr:`StageInfo.vulkan`), and only a real GPU (discrete
    before integrated), never a CPU implementation; when Vulkan cannot be used it keeps the CPU, silently.

    Args:
        requested: The device name (``PipelineOptions.device``).
        list_devices: The Vulkan devices (:meth:`PluginHost.vulkan_devices`), asked only when needed.
        runs_on_vulkan: Whether any stage of the pipeline runs on Vulkan.

    Raises:
        UsageError: ``vulkan[:N]`` where Vulkan cannot be used (the runtime's reason), there is no Vulkan device,
            or no device N.
    """
    kind, index = parse_device(requested)
    if kind == "auto":
        if not runs_on_vulkan or torch.cuda.is_available() or os.environ.get(VULKAN_AUTO_ENV, "").strip() == "0":
            return None
        try:
            found = list_devices()
        except RemasterError:
            return None
        for wanted in _AUTO_VULKAN_ORDER:
            for device in found:
                if device.kind == wanted and device.real_gpu:
                    return device
        return None
    if kind != "vulkan":
        return None
    found = tuple(list_devices())
    text = str(requested).strip().lower()
    if not found:
        raise UsageError(f"device {text!r} was requested but the Vulkan runtime sees no device",
                         hint="install your GPU's Vulkan driver (on a machine without one, Mesa's lavapipe: "
                              "apt-get install mesa-vulkan-drivers), or use {opt:device_cpu}")
    wanted_index = 0 if index is None else index
    for device in found:
        if device.index == wanted_index:
            return device
    count = len(found)
    raise UsageError(f"device {text!r} does not exist: there {'is' if count == 1 else 'are'} {count} Vulkan "
                     f"device{'' if count == 1 else 's'} ({', '.join(d.describe() for d in found)})",
                     hint=f"use vulkan:0 to vulkan:{count - 1}" if count > 1 else "use vulkan or vulkan:0")


def _cpuinfo_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def _torch_says(check_name: str) -> bool | None:
    """A private torch CPU check, or ``None`` when this torch lacks it or it fails ("don't know")."""
    check = getattr(torch.cpu, check_name, None)
    if check is None:
        return None
    try:
        return bool(check())
    except Exception:  # a private helper: any failure means "don't know"
        return None


def _has_amx() -> bool:
    said = _torch_says("_is_amx_tile_supported")
    return said if said is not None else "amx_bf16" in _cpuinfo_flags()


def _has_avx512_bf16() -> bool:
    said = _torch_says("_is_avx512_bf16_supported")
    return said if said is not None else "avx512_bf16" in _cpuinfo_flags()


#: CPU instruction sets on which bf16 is computed natively (about twice fp32's speed, not emulated).
NATIVE_BF16_ISAS = frozenset({"AMX", "AVX512-BF16"})


@dataclass(frozen=True)
class Capability:
    """What the host computes fast; the ``auto`` precision choice depends on nothing else.

    Tests build one by hand to check the choice for machines they do not run on
    (``Capability(cpu_isa="AVX2")``, ``Capability(cpu_isa="AMX")``, ``Capability(cuda_bf16=True)``).

    Attributes:
        cpu_isa: The CPU's best instruction set for this purpose: ``"AMX"``,
            ``"AVX512-BF16"``, or what torch reports otherwise (``"AVX2"``, ``"AVX512"``, ...).
        cuda_bf16: The CUDA device computes bf16 (Ampere or newer).
    """

    cpu_isa: str = "AVX2"
    cuda_bf16: bool = False

    @property
    def native_cpu_bf16(self) -> bool:
        """bf16 runs natively on this CPU; elsewhere PyTorch emulates it, slower than fp32."""
        return self.cpu_isa in NATIVE_BF16_ISAS


def _cpu_isa() -> str:
    if _has_amx():
        return "AMX"
    if _has_avx512_bf16():
        return "AVX512-BF16"
    capability = getattr(torch.backends.cpu, "get_cpu_capability", None)
    return str(capability()).upper() if capability is not None else "unknown ISA"


#: Environment variable that makes remaster take the CPU for another kind (``AVX2``, ``AVX512-BF16``, ``AMX``):
#: reproduces another machine's ``auto`` choice, and lets the test suite behave the same on every machine.
CPU_ISA_ENV = "REMASTER_CPU_ISA"


@functools.cache
def _detected_cpu_isa() -> str:
    return _cpu_isa()


def _cpu_capability() -> str:
    forced = os.environ.get(CPU_ISA_ENV, "").strip().upper()
    return forced or _detected_cpu_isa()


def host_capability(device: torch.device | None = None) -> Capability:
    """The :class:`Capability` of this machine (for ``device``'s GPU when it is a CUDA device)."""
    cuda_bf16 = False
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        cuda_bf16 = bool(torch.cuda.is_bf16_supported())
    return Capability(cpu_isa=_cpu_capability(), cuda_bf16=cuda_bf16)


@functools.cache
def cpu_signature() -> str:
    """This CPU as compiled code sees it: its detected kind (never ``REMASTER_CPU_ISA``'s), its architecture and a
    digest of its feature flags. Part of a compiled artifact's key: native code built for one CPU is never loaded
    on another (a cache shared by machines of a cluster, a home folder moved)."""
    flags = " ".join(sorted(_cpuinfo_flags()))
    digest = hashlib.sha256(flags.encode()).hexdigest()[:12]
    return f"{_detected_cpu_isa()}/{platform.machine()}/{digest}"


def cpu_supports_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX-BF16 or AVX512-BF16).

    Without either, PyTorch emulates bf16 and it is slower than fp32, so
    "auto" precision only picks bf16 on CPUs where this is true.
    """
    return host_capability().native_cpu_bf16


def torch_dtype(name: Precision) -> torch.dtype:
    """The torch dtype of a precision name (``"bf16"`` → ``torch.bfloat16``): the one mapping to torch."""
    return PRECISIONS[name]


#: Sources deeper than this many bits per sample keep fp32 under ``auto``: bf16 keeps 8 bits of mantissa,
#: so a 16-bit photo would come out with about 1,300 distinct levels instead of tens of thousands.
AUTO_REDUCED_MAX_BITS = 8


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision one stage runs in, and why, for logs and reports.

    Attributes:
        dtype: The compute dtype.
        requested: What the user asked for (``"auto"``, ``"bf16"``, ...).
        note: Why the stage does not run in what was asked, when it does not
            (e.g. ``"supports only fp32"``); ``None`` when the request held.
    """

    dtype: torch.dtype
    requested: str = "auto"
    note: str | None = None

    @property
    def name(self) -> str:
        """``"fp32"``, ``"bf16"`` or ``"fp16"``."""
        return precision_name(self.dtype)


def choose_precision(requested: str, device: torch.device, supported: tuple[str | torch.dtype, ...], *,
                     bit_depth: int = 8, capability: Capability | None = None,
                     vulkan: VulkanDevice | None = None) -> PrecisionChoice:
    """Choose the compute precision of one stage for one image; never fails for a supported stage.

    Args:
        requested: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device: Where the stage runs.
        supported: Precisions the stage supports (:attr:`StageInfo.dtypes`: names or torch dtypes).
        bit_depth: Bits per sample of the image (:attr:`Meta.bit_depth`: 8, 16, or 32 for float).
        capability: What the host computes fast (default: :func:`host_capability`).
        vulkan: The Vulkan device the stage computes on, if it does (``device`` is then the CPU, where its
            pixels live): fp16 where the device has it, else fp32; bf16 is refused.

    ``auto`` picks the fastest precision that the stage supports, the device runs
    natively and the input's bit depth survives: fp16 on CUDA (bf16 when the stage
    lacks fp16 and the GPU has bf16), bf16 on CPUs with native bf16, fp32
    otherwise — and fp32 for 16-bit and float inputs. An explicit request applies
    when the stage supports it on that device; otherwise the stage runs in fp32
    and :attr:`PrecisionChoice.note` says why.

    Raises:
        UsageError: for an unknown name, a stage with no precision that runs on ``device``, or bf16 on Vulkan.
    """
    name = precision_request(requested)
    if vulkan is not None:
        return _vulkan_precision(name, vulkan, supported, bit_depth)
    capability = capability or host_capability(device)
    dtypes = tuple(torch_dtype(precision_name(dtype)) for dtype in supported)
    runnable = tuple(dtype for dtype in dtypes if not (dtype is torch.float16 and device.type == "cpu"))
    if not runnable:
        stage_names = ", ".join(precision_name(dtype) for dtype in dtypes) or "none"
        raise UsageError(f"no precision this stage supports ({stage_names}) runs on {device.type}",
                         hint="run it on another device")
    fallback = torch.float32 if torch.float32 in runnable else runnable[0]

    if name != "auto":
        wanted = torch_dtype(precision_name(name))
        if wanted in runnable:
            return PrecisionChoice(wanted, name)
        why = "fp16 does not run on the CPU" if (wanted is torch.float16 and device.type == "cpu") else (
            f"supports only {', '.join(precision_name(dtype) for dtype in runnable)}")
        return PrecisionChoice(fallback, name, f"{why}; runs in {precision_name(fallback)}")

    if bit_depth > AUTO_REDUCED_MAX_BITS and torch.float32 in runnable:
        return PrecisionChoice(torch.float32, name)
    if device.type == "cuda":
        preference: tuple[torch.dtype, ...] = (torch.float16,) + ((torch.bfloat16,) if capability.cuda_bf16 else ())
    elif device.type == "cpu" and capability.native_cpu_bf16:
        preference = (torch.bfloat16,)
    else:
        preference = ()
    for dtype in preference:
        if dtype in runnable:
            return PrecisionChoice(dtype, name)
    return PrecisionChoice(fallback, name)


def _vulkan_precision(name: str, vulkan: VulkanDevice, supported: tuple[str | torch.dtype, ...],
                      bit_depth: int) -> PrecisionChoice:
    """:func:`choose_precision` on a Vulkan device: fp32, or fp16 where the device stores and computes it."""
    if name == "bf16":
        raise UsageError(f"bf16 does not run on Vulkan ({vulkan}): ncnn computes in fp32 or fp16",
                         hint="use {opt:precision_fp32}, or fp16 where the device has it")
    names = {precision_name(dtype) for dtype in supported}
    fp16 = vulkan.fp16 and "fp16" in names
    if name == "fp16" and not fp16:
        why = f"{vulkan} ({vulkan.name}) has no fp16" if not vulkan.fp16 else "the stage supports no fp16"
        return PrecisionChoice(torch.float32, name, f"{why}; runs in fp32")
    if name == "fp16" or (name == "auto" and fp16 and bit_depth <= AUTO_REDUCED_MAX_BITS):
        return PrecisionChoice(torch.float16, name)
    return PrecisionChoice(torch.float32, name)


def resolve_precision(requested: str, device: torch.device, supported: tuple[str | torch.dtype, ...], *,
                      bit_depth: int = 8, capability: Capability | None = None) -> torch.dtype:
    """Like :func:`choose_precision`, but strict: for code that runs one network of its own (fine-tuning).

    Raises:
        UsageError: for an unknown name, fp16 on the CPU, or a precision the
            network does not support.
    """
    choice = choose_precision(requested, device, supported, bit_depth=bit_depth, capability=capability)
    if choice.note is not None:
        if choice.requested == "fp16" and device.type == "cpu":
            raise UsageError("fp16 is not supported on CPU, use bf16 or fp32")
        stage_names = ", ".join(precision_name(dtype) for dtype in supported) or "none"
        raise UsageError(f"this stage does not support {choice.requested}", hint=f"it supports {stage_names}")
    return choice.dtype


def autocast_context(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager[Any]:
    """Autocast to ``dtype`` on ``device``; a no-op context for fp32."""
    if dtype in (torch.float16, torch.bfloat16):
        return torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext()


def describe_target(device: torch.device, vulkan: VulkanDevice | None) -> str:
    """:func:`describe_device`, or the Vulkan device's line when the pipeline's network stages run there."""
    if vulkan is None:
        return describe_device(device)
    return f"{vulkan.describe()}; other stages on the {describe_device(device)}"


def describe_device(device: torch.device) -> str:
    """One line for logs, e.g. ``"cpu (AVX2, 2 threads)"`` or ``"cuda:0 (NVIDIA H100, 79.1 GiB)"``."""
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        props = torch.cuda.get_device_properties(index)
        return f"cuda:{index} ({props.name}, {props.total_memory / 2**30:.1f} GiB)"
    if device.type == "cpu":
        isa = _cpu_capability()
        if os.environ.get(CPU_ISA_ENV, "").strip():
            isa += f" per {CPU_ISA_ENV}; detected {_detected_cpu_isa()}"
        threads = torch.get_num_threads()
        return f"cpu ({isa}, {threads} thread{'' if threads == 1 else 's'})"
    return str(device)
