"""Write an ESRGAN-family network, as spandrel builds it, into ncnn's ``.param`` text and ``.bin`` weights.

The other direction of :mod:`remaster_realesrgan.ncnn`, so that a model file runs on Vulkan (through ncnn) too.
Two architectures are covered, as spandrel builds them from any of their file layouts:

* **ESRGAN / Real-ESRGAN** (spandrel's ``RRDBNet``): the first convolution, the residual-in-residual dense blocks
  (each dense block's growing concatenations, the 0.2-scaled residuals), the trunk's shortcut, nearest-neighbour
  ``upconv`` or ``pixel_shuffle`` upsampling, ReLU/LeakyReLU/PReLU activations, and the pixel-unshuffle front of
  the x1/x2 Real-ESRGAN models (ncnn's ``Reorg`` in PyTorch's order);
* **Compact** (``SRVGGNetCompact``): convolutions with PReLU, ReLU or LeakyReLU, the final pixel shuffle and the
  nearest-upsampled input added back.

The graph has the form of the official Real-ESRGAN ncnn releases (``data`` in, ``output`` out, activations fused
into the convolutions where ncnn can, ``Split`` wherever a blob feeds several layers), so ncnn runs it with the
same kernels as the packaged models, and :func:`remaster_realesrgan.ncnn.convert` reads an RRDB or PReLU-Compact
graph written here back into the same state dict (the tests check both ways). Weights are written as fp32: the
converted model holds exactly the file's float32 parameters (ncnn narrows them itself where it computes in fp16).

Anything else (other architectures; ESRGAN+ "plus" blocks, normalisation layers) raises
:class:`NotConvertible` naming what was met, which the stage turns into a "not available on Vulkan" message.

Written here rather than with ``pnnx`` (the converter ncnn's authors publish on PyPI): pnnx goes through
TorchScript and a 29 MB native tool linked against its own libtorch, emits graphs of its own shape, and would be a
second dependency on the Vulkan path; this writer is a walk over spandrel's modules for the two architectures the
Vulkan path serves, whose every output is checked by the existing reader.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = ["NcnnGraph", "NotConvertible", "export", "CONVERTER_VERSION", "INPUT_BLOB", "OUTPUT_BLOB"]

#: Changes whenever the written graph changes, so that cached conversions are made again.
CONVERTER_VERSION = "1"
#: The blobs of the written graphs, as in the packaged ones.
INPUT_BLOB, OUTPUT_BLOB = "data", "output"

_MAGIC = "7767517"
_TAG_FP32 = 0x00000000
# ncnn's Convolution activation_type values and BinaryOp/Eltwise operation codes.
_ACT_RELU, _ACT_LEAKY, _ACT_PRELU = 1, 2, 4
_BINARY_ADD, _ELTWISE_SUM = 0, 1
_INTERP_NEAREST = 1
#: ncnn's Reorg mode that orders channels as ``torch.pixel_unshuffle`` does.
_REORG_PIXEL_UNSHUFFLE = 0
#: RRDBNet scales each dense block's and each RRDB's residual by this before adding it.
_RESIDUAL_SCALE = 0.2


class NotConvertible(ValueError):
    """The network has a part the ncnn writer does not cover (the message names it)."""


@dataclass(frozen=True)
class NcnnGraph:
    """A network as ncnn reads it.

    Attributes:
        param: The ``.param`` text.
        weights: The ``.bin`` bytes.
        architecture: ``"ESRGAN"`` or ``"Compact"``.
        scale: The network's upscale factor.
        pad_multiple: The input's sides must be a multiple of this (the pixel-unshuffle models'); the caller pads
            them by reflection and crops the output to ``scale`` times the unpadded size, as spandrel does.
    """

    param: str
    weights: bytes
    architecture: str
    scale: int
    pad_multiple: int = 1


@dataclass
class _Layer:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: str
    weights: bytes = b""


@dataclass
class _Writer:
    """Collects layers; blobs fed to several layers get their ``Split`` when the text is made."""

    layers: list[_Layer] = field(default_factory=list)
    counter: Counter[str] = field(default_factory=Counter)

    def add(self, type_: str, inputs: list[str], params: str = "", weights: bytes = b"") -> str:
        self.counter[type_] += 1
        name = f"{type_.lower()}_{self.counter[type_]}"
        output = f"{name}_out"
        self.layers.append(_Layer(type_, name, list(inputs), [output], params, weights))
        return output

    def text(self, result: str) -> tuple[str, bytes]:
        for layer in self.layers:  # the last layer's blob is the graph's output
            layer.outputs = [OUTPUT_BLOB if blob == result else blob for blob in layer.outputs]
            layer.inputs = [OUTPUT_BLOB if blob == result else blob for blob in layer.inputs]
        uses = Counter(blob for layer in self.layers for blob in layer.inputs)
        shared = {blob for blob, count in uses.items() if count > 1}
        taken: Counter[str] = Counter()
        for layer in self.layers:
            renamed = []
            for blob in layer.inputs:
                if blob in shared:
                    renamed.append(f"{blob}_split{taken[blob]}")
                    taken[blob] += 1
                else:
                    renamed.append(blob)
            layer.inputs = renamed
        ordered: list[_Layer] = []
        for layer in self.layers:
            ordered.append(layer)
            for blob in layer.outputs:
                if blob in shared:
                    ordered.append(_Layer("Split", f"split_{blob}", [blob],
                                          [f"{blob}_split{i}" for i in range(uses[blob])], ""))
        blobs = {blob for layer in ordered for blob in layer.outputs}
        lines = [_MAGIC, f"{len(ordered)} {len(blobs)}"]
        for layer in ordered:
            fields = [layer.type, layer.name, str(len(layer.inputs)), str(len(layer.outputs)),
                      *layer.inputs, *layer.outputs]
            lines.append(" ".join(fields + ([layer.params] if layer.params else [])))
        return "\n".join(lines) + "\n", b"".join(layer.weights for layer in ordered)


def _f32(tensor: torch.Tensor) -> bytes:
    return np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy(), dtype="<f4").tobytes()


def _float(value: float) -> str:
    return f"{float(value):e}"


def _activation(module: nn.Module | None) -> tuple[str, bytes] | None:
    """A Convolution's fused activation parameters for ``module``, or ``None`` where it is none ncnn fuses."""
    if isinstance(module, nn.LeakyReLU):
        return f" 9={_ACT_LEAKY} -23310=1,{_float(module.negative_slope)}", b""
    if isinstance(module, nn.ReLU):
        return f" 9={_ACT_RELU}", b""
    return None


def _conv(writer: _Writer, blob: str, conv: nn.Conv2d, activation: nn.Module | None) -> tuple[str, bool]:
    """A Convolution layer for ``conv`` (with ``activation`` fused where ncnn can); whether it was fused."""
    kernel_h, kernel_w = conv.kernel_size
    expected_padding = (kernel_h // 2, kernel_w // 2)
    if (conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros"
            or conv.padding != expected_padding or kernel_h % 2 == 0 or kernel_w % 2 == 0):
        raise NotConvertible(f"a convolution other than odd-sized, stride 1, 'same' zero padding ({conv})")
    fused = _activation(activation)
    params = (f"0={conv.out_channels} 1={kernel_w} 11={kernel_h} 4={expected_padding[1]} 14={expected_padding[0]} "
              f"5={int(conv.bias is not None)} 6={conv.weight.numel()}")
    weights = struct.pack("<I", _TAG_FP32) + _f32(conv.weight)
    if conv.bias is not None:
        weights += _f32(conv.bias)
    if fused is not None:
        params += fused[0]
    return writer.add("Convolution", [blob], params, weights), fused is not None


def _prelu(writer: _Writer, blob: str, module: nn.PReLU) -> str:
    return writer.add("PReLU", [blob], f"0={module.num_parameters}", _f32(module.weight))


def _upsample(writer: _Writer, blob: str, scale: float) -> str:
    if scale != int(scale) or scale < 1:
        raise NotConvertible(f"a nearest-neighbour upsampling by {scale}")
    return writer.add("Interp", [blob], f"0={_INTERP_NEAREST} 1={_float(scale)} 2={_float(scale)}")


def _module(writer: _Writer, blob: str, module: nn.Module) -> str:
    """Write ``module`` applied to ``blob``; its output blob."""
    kind = type(module).__name__
    if isinstance(module, nn.Sequential):
        return _sequence(writer, blob, list(module))
    if isinstance(module, nn.Conv2d):
        return _conv(writer, blob, module, None)[0]
    if isinstance(module, (nn.LeakyReLU, nn.ReLU)):
        slope = f"0={_float(module.negative_slope)}" if isinstance(module, nn.LeakyReLU) else ""
        return writer.add("ReLU", [blob], slope)
    if isinstance(module, nn.PReLU):
        return _prelu(writer, blob, module)
    if isinstance(module, nn.Upsample):
        if module.mode != "nearest" or module.size is not None or not isinstance(module.scale_factor, (int, float)):
            raise NotConvertible(f"an upsampling ncnn's nearest Interp does not match ({module})")
        return _upsample(writer, blob, float(module.scale_factor))
    if isinstance(module, nn.PixelShuffle):
        return writer.add("PixelShuffle", [blob], f"0={module.upscale_factor}")
    if kind == "ShortcutBlock":  # x + sub(x)
        return writer.add("BinaryOp", [blob, _module(writer, blob, module.sub)], f"0={_BINARY_ADD}")
    if kind == "RRDB":  # RDB3(RDB2(RDB1(x))) * 0.2 + x
        out = blob
        for dense in (module.RDB1, module.RDB2, module.RDB3):
            out = _module(writer, out, dense)
        return _scaled_sum(writer, out, blob)
    if kind == "ResidualDenseBlock_5C":
        return _dense_block(writer, blob, module)
    raise NotConvertible(f"a {kind} layer")


def _sequence(writer: _Writer, blob: str, modules: list[nn.Module]) -> str:
    index = 0
    while index < len(modules):
        module = modules[index]
        following = modules[index + 1] if index + 1 < len(modules) else None
        if isinstance(module, nn.Conv2d):
            blob, fused = _conv(writer, blob, module, following)
            index += 2 if fused else 1
            continue
        blob = _module(writer, blob, module)
        index += 1
    return blob


def _scaled_sum(writer: _Writer, residual: str, base: str) -> str:
    coefficients = f"-23301=2,{_float(_RESIDUAL_SCALE)},{_float(1.0)}"
    return writer.add("Eltwise", [residual, base], f"0={_ELTWISE_SUM} {coefficients}")


def _dense_block(writer: _Writer, blob: str, module: nn.Module) -> str:
    """x1 = conv1(x); x2 = conv2(cat(x, x1)); ...; conv5(cat(x, ..., x4)) * 0.2 + x (spandrel's forward)."""
    if getattr(module, "conv1x1", None) is not None:
        raise NotConvertible("ESRGAN+ ('plus') dense blocks")
    features = [blob]
    for index in range(1, 6):
        joined = features[0] if len(features) == 1 else writer.add("Concat", list(features), "0=0")
        features.append(_module(writer, joined, getattr(module, f"conv{index}")))
    return _scaled_sum(writer, features[-1], blob)


def _rrdbnet(writer: _Writer, network: nn.Module) -> tuple[str, int]:
    factor = int(network.shuffle_factor or 1)
    blob = INPUT_BLOB
    if factor > 1:
        blob = writer.add("Reorg", [blob], f"0={factor} 1={_REORG_PIXEL_UNSHUFFLE}")
    return _module(writer, blob, network.model), factor


def _compact(writer: _Writer, network: nn.Module) -> str:
    if network.num_in_ch != network.num_out_ch:
        raise NotConvertible(f"a Compact network from {network.num_in_ch} to {network.num_out_ch} channels")
    out = _sequence(writer, INPUT_BLOB, list(network.body))
    out = _module(writer, out, network.upsampler)
    base = _upsample(writer, INPUT_BLOB, float(network.upscale))
    return writer.add("BinaryOp", [out, base], f"0={_BINARY_ADD}")


def export(network: nn.Module, *, architecture: str, scale: int) -> NcnnGraph:
    """``network`` (a spandrel model's ``.model``) as an ncnn graph.

    Args:
        network: The network, in any dtype or device (weights are read as float32).
        architecture: spandrel's architecture id (``descriptor.architecture.id``): ``"ESRGAN"`` or ``"Compact"``.
        scale: The network's upscale factor (``descriptor.scale``).

    Raises:
        NotConvertible: another architecture, or a part of one the writer does not cover.
    """
    writer = _Writer()
    writer.layers.append(_Layer("Input", "input", [], [INPUT_BLOB], ""))
    multiple = 1
    with torch.no_grad():
        if architecture == "ESRGAN" and type(network).__name__ == "RRDBNet":
            out, multiple = _rrdbnet(writer, network)
        elif architecture == "Compact" and type(network).__name__ == "SRVGGNetCompact":
            out = _compact(writer, network)
        else:
            raise NotConvertible(f"the {architecture} architecture (only ESRGAN/Real-ESRGAN RRDB and Compact "
                                 "networks convert)")
    param, weights = writer.text(out)
    return NcnnGraph(param=param, weights=weights, architecture=architecture, scale=scale,
                     pad_multiple=multiple)

