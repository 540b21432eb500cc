"""Vulkan devices as the core knows them: a name, a kind and what they compute, without importing a runtime.

remaster's core never imports ncnn (or any Vulkan runtime). A plugin that runs stages on Vulkan (the Real-ESRGAN
plugin, through ncnn) answers the :func:`~remaster.plugin.hookspecs.remaster_vulkan_devices` hook with
:class:`VulkanDevice` values; the pipeline chooses among them (``--device vulkan[:N]``, or ``auto``, which never
takes a CPU implementation) and hands the chosen one to the stages that declare :attr:`StageInfo.vulkan`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["VulkanDevice", "VulkanKind", "SOFTWARE_NAMES"]

#: What the Vulkan driver says a device is (``VkPhysicalDeviceType``).
VulkanKind = Literal["discrete", "integrated", "virtual", "cpu", "other"]

#: Names of Vulkan implementations that compute on the CPU, whatever type their driver reports.
SOFTWARE_NAMES = re.compile(r"llvmpipe|lavapipe|swiftshader|softpipe", re.IGNORECASE)


@dataclass(frozen=True)
class VulkanDevice:
    """One Vulkan device, as a runtime plugin reports it.

    Attributes:
        index: The runtime's device index: ``vulkan:N`` names it.
        name: The driver's name for it (``"AMD Radeon RX 7600"``, ``"llvmpipe (LLVM 15.0.6, 256 bits)"``).
        kind: ``"discrete"``, ``"integrated"``, ``"virtual"``, ``"cpu"`` or ``"other"``.
        fp16: The device stores and computes fp16 (what ``--precision fp16`` and ``auto`` need there).
        memory_bytes: Its device-local memory, where the runtime tells.
    """

    index: int
    name: str
    kind: VulkanKind = "other"
    fp16: bool = False
    memory_bytes: int | None = None

    def __str__(self) -> str:
        return f"vulkan:{self.index}"

    @property
    def software(self) -> bool:
        """A Vulkan implementation on the CPU (lavapipe/llvmpipe, SwiftShader): ``auto`` never picks one."""
        return self.kind == "cpu" or SOFTWARE_NAMES.search(self.name) is not None

    @property
    def real_gpu(self) -> bool:
        """A discrete or integrated GPU, not on the CPU: what ``auto`` may pick."""
        return self.kind in ("discrete", "integrated") and not self.software

    def describe(self) -> str:
        """One line for logs: ``"vulkan:0 (llvmpipe (LLVM 15.0.6, 256 bits), CPU implementation, fp16)"``."""
        kind = "CPU implementation" if self.software else f"{self.kind} GPU"
        memory = f", {self.memory_bytes / 2**30:.1f} GiB" if self.memory_bytes else ""
        return f"{self} ({self.name}, {kind}{memory}{', fp16' if self.fp16 else ''})"

    def as_json(self) -> dict[str, Any]:
        """What listings say of the device."""
        return {"device": str(self), "name": self.name, "kind": self.kind, "software": self.software,
                "fp16": self.fp16, "memory_bytes": self.memory_bytes}
