"""``remaster devices``: the CPU, the CUDA and Vulkan devices there are, and what ``--device auto`` takes."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from remaster.errors import RemasterError

if TYPE_CHECKING:
    from remaster.plugin.host import PluginHost


def devices(args: argparse.Namespace, host: PluginHost) -> int:
    """``remaster devices``: every device a pipeline could run on, and ``auto``'s choice for the default upscaler."""
    import torch

    from remaster.pipeline.configured import default_upscaler, resolve_spec
    from remaster.pipeline.devices import describe_device, pick_vulkan, resolve_device

    cuda = [describe_device(torch.device("cuda", index)) for index in range(torch.cuda.device_count())] if (
        torch.cuda.is_available()) else []
    try:
        vulkan = host.vulkan_devices()
        vulkan_error = None
    except RemasterError as exc:
        vulkan, vulkan_error = (), exc.for_cli()
    upscaler = resolve_spec(default_upscaler(host), host)
    picked = pick_vulkan("auto", lambda: vulkan, runs_on_vulkan=upscaler.info.vulkan)
    auto = str(picked) if picked is not None else str(resolve_device("auto"))
    if getattr(args, "json", False):
        report: dict[str, Any] = {"cpu": describe_device(torch.device("cpu")), "cuda": cuda,
                                  "vulkan": [device.as_json() for device in vulkan], "vulkan_error": vulkan_error,
                                  "auto": auto, "auto_for": upscaler.name}
        print(json.dumps(report, indent=2))
        return 0
    print(describe_device(torch.device("cpu")))
    for line in cuda or ["cuda: none (no CUDA device, or a PyTorch built without CUDA)"]:
        print(line)
    for device in vulkan:
        note = "" if device.real_gpu else "  (not taken by auto: " + (
            "a CPU implementation)" if device.software else f"a {device.kind} device)")
        print(device.describe() + note)
    if vulkan_error is not None:
        print(f"vulkan: none ({vulkan_error})")
    elif not vulkan:
        print("vulkan: none (the Vulkan runtime sees no device)")
    print(f"auto: {auto} (for {upscaler.name})")
    return 0
