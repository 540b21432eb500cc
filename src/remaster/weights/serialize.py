"""Reading and writing state dicts safely: safetensors, or pickles through torch's ``weights_only`` unpickler only.

:func:`load_state_dict` never runs code from a file; :func:`save_state_dict`
writes canonical safetensors atomically. torch and safetensors are imported
inside the functions that read or write tensors, never at module level.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from remaster.errors import UnsafeWeightsError, WeightsError

if TYPE_CHECKING:
    import torch

__all__ = ["load_state_dict", "load_state_dict_layout", "save_state_dict"]

_PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
# Keys under which training frameworks nest the state dict, in order of preference:
# BasicSR keeps the EMA weights (the better ones) in params_ema next to params.
_CONTAINER_KEYS = ("params_ema", "params", "state_dict", "model")
# Markers of a damaged pickle, as opposed to one holding forbidden objects.
_CORRUPT_PICKLE = ("truncated", "invalid load key", "EOF", "ran out of input")


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict (parameter name → tensor) without ever running code from the file.

    ``.safetensors`` files are read with safetensors; ``.pth .pt .ckpt .bin``
    with ``torch.load(weights_only=True)`` only. The usual wrappers
    (``params_ema``, preferred, then ``params``, ``state_dict``, ``model``) are
    unwrapped.

    Raises:
        UnsafeWeightsError: the pickle holds objects other than tensors and plain
            containers; it would run code if unpickled, so it is refused.
        WeightsError: the file is missing, damaged, of an unknown type, or holds no state dict.
    """
    file, suffix = _existing_weights_file(path)
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(file), device="cpu")
        except Exception as exc:  # SafetensorError, OSError, ...: a header or size that does not add up
            raise WeightsError(f"cannot read the safetensors file: {exc}", path=file,
                               hint="the file is damaged; get it again") from None
    elif suffix in _PICKLE_SUFFIXES:
        state = _load_pickle_safely(file)
    else:
        raise WeightsError(f"unknown weights file type {file.suffix!r}", path=file,
                           hint="give a .safetensors, .pth, .pt, .ckpt or .bin file")
    return _as_state_dict(_unwrap(state), file)


def _existing_weights_file(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """The file and its lower-case suffix; refused when it is not there."""
    file = Path(path)
    if not file.is_file():
        raise WeightsError("no such weights file", path=file)
    return file, file.suffix.lower()


def load_state_dict_layout(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict's names, shapes and dtypes, as tensors on torch's ``meta`` device; no tensor data is read
    where the format allows it.

    For deciding what a file holds before building a network from it (e.g. with
    spandrel's per-architecture ``detect``). ``.safetensors``: the header only.
    Zip-format pickles (``torch.save`` since torch 1.6): the same ``weights_only``
    unpickler as :func:`load_state_dict`, with the tensor data memory-mapped and
    never touched. Older pickles are read whole (the format interleaves data and
    structure).

    Raises:
        UnsafeWeightsError, WeightsError: as :func:`load_state_dict`.
    """
    import torch

    file, suffix = _existing_weights_file(path)
    if suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(file), framework="pt", device="cpu") as handle:
                slices = {name: handle.get_slice(name) for name in handle.keys()}
                return {name: torch.empty(part.get_shape(), device="meta",
                                          dtype=getattr(torch, _SAFETENSORS_DTYPES.get(part.get_dtype(), "float32")))
                        for name, part in slices.items()}
        except Exception as exc:  # SafetensorError, OSError, ...: as load_state_dict
            raise WeightsError(f"cannot read the safetensors file: {exc}", path=file,
                               hint="the file is damaged; get it again") from None
    if suffix not in _PICKLE_SUFFIXES:
        raise WeightsError(f"unknown weights file type {file.suffix!r}", path=file,
                           hint="give a .safetensors, .pth, .pt, .ckpt or .bin file")
    import zipfile

    state = _as_state_dict(_unwrap(_load_pickle_safely(file, mmap=zipfile.is_zipfile(file))), file)
    return {name: torch.empty(tensor.shape, dtype=tensor.dtype, device="meta") for name, tensor in state.items()}


#: safetensors' dtype names -> torch's; an unknown one only matters for its element size, which layout users ignore.
_SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}


#: How much larger than its file a zip checkpoint's members may say they are, together (``torch.save`` stores
#: them uncompressed, so a real checkpoint is 1x); a deflated member beyond that is a zip bomb.
ZIP_EXPANSION_LIMIT = 4
#: Members of this total size pass whatever the ratio (tiny checkpoints, mostly headers).
ZIP_SMALL_TOTAL = 64 * 2**20


def check_zip_members(file: Path) -> None:
    """Refuse a zip checkpoint whose members would inflate far beyond the file's own size, before torch reads it.

    The reader allocates each member at the size the zip's directory declares, so declared sizes are what bound
    the memory.

    Raises:
        WeightsError: the members declare more than :data:`ZIP_EXPANSION_LIMIT` times the file's size.
    """
    import zipfile

    try:
        with zipfile.ZipFile(file) as archive:
            declared = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip (an older pickle), or damaged: torch's reader says which
    size = file.stat().st_size
    if declared > max(ZIP_EXPANSION_LIMIT * size, ZIP_SMALL_TOTAL):
        raise WeightsError(f"the checkpoint would inflate to {declared / 2**20:,.0f} MiB from a "
                           f"{size / 2**20:,.1f} MiB file (compressed members; torch.save writes none): refused as "
                           "a zip bomb", path=file,
                           hint="get the file from its official source, or as .safetensors")


def _load_pickle_safely(file: Path, *, mmap: bool = False) -> Any:
    import torch

    check_zip_members(file)
    try:
        # weights_only=True is torch's restricted unpickler: tensors and plain containers, no imports.
        return torch.load(file, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        reason = _weights_only_reason(str(exc))
        if any(marker in reason for marker in _CORRUPT_PICKLE):
            raise WeightsError(f"the checkpoint is damaged ({reason})", path=file,
                               hint="get the file again") from None
        junk = _not_a_pickle_opcode(reason)
        if junk is not None:
            # torch's restricted unpickler reports a byte it does not know the same way as a pickle
            # instruction it refuses; a byte that is no pickle instruction at all means no pickle at all.
            if _looks_like_safetensors(file):
                raise WeightsError(f"not a PyTorch checkpoint but a safetensors file named {file.suffix}", path=file,
                                   hint="give it a .safetensors name") from None
            raise WeightsError(f"not a PyTorch checkpoint (byte 0x{junk:02x} where a pickle instruction should be)",
                               path=file, hint="the file is damaged or of another kind; get it again") from None
        raise UnsafeWeightsError(
            f"the checkpoint holds Python objects that would run code if unpickled ({reason}); remaster refuses to "
            "load it", path=file,
            hint="get a .safetensors version of these weights, or convert the file to .safetensors in an "
                 "environment you trust",
        ) from None
    except Exception as exc:  # zip/EOF/struct errors: torch has no single type for a damaged file
        raise WeightsError(f"cannot read the checkpoint ({type(exc).__name__}: {first_line(str(exc))})",
                           path=file, hint="the file is damaged or not a PyTorch checkpoint; get it again") from None


def _not_a_pickle_opcode(reason: str) -> int | None:
    """The byte torch's weights_only unpickler stopped at, if it is no pickle opcode at all."""
    match = re.fullmatch(r"Unsupported operand (\d+)", reason)
    if not match:
        return None
    import pickletools

    byte = int(match.group(1))
    return None if any(op.code == chr(byte) for op in pickletools.opcodes) else byte


def _looks_like_safetensors(file: Path) -> bool:
    """Whether the file starts as safetensors does: a little-endian header length, then a JSON object."""
    with open(file, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:] == b"{" and int.from_bytes(head[:8], "little") < file.stat().st_size


def _weights_only_reason(message: str) -> str:
    """The useful part of torch's long weights_only message (e.g. 'Unsupported global: GLOBAL os.system ...')."""
    match = re.search(r"WeightsUnpickler error:\s*(.+)", message)
    return first_line(match.group(1) if match else message)


def first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no details"
    return line.split(". Please use")[0].strip().rstrip(".")


def _unwrap(state: Any) -> Any:
    for _ in range(3):  # a few levels cover {"model": {"state_dict": {...}}} without looping on odd files
        if not isinstance(state, Mapping):
            return state
        for key in _CONTAINER_KEYS:
            inner = state.get(key)
            if isinstance(inner, Mapping) and inner and (_all_tensors(inner) or _has_container(inner)):
                state = inner
                break
        else:
            return state
    return state


def _has_container(value: Mapping[Any, Any]) -> bool:
    return any(isinstance(value.get(k), Mapping) for k in _CONTAINER_KEYS)


def _all_tensors(value: Mapping[Any, Any]) -> bool:
    import torch

    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _as_state_dict(state: Any, file: Path) -> dict[str, torch.Tensor]:
    if not isinstance(state, Mapping) or not state:
        raise WeightsError(f"the file holds {type(state).__name__}, not a state dict of tensors", path=file)
    if not _all_tensors(state):
        bad = next(k for k, v in state.items() if not (isinstance(k, str) and _is_tensor(v)))
        raise WeightsError(f"the file is not a state dict of tensors (entry {bad!r} is "
                           f"{type(state[bad]).__name__})", path=file,
                           hint=f"expected tensors, possibly under one of {', '.join(_CONTAINER_KEYS)}")
    return dict(state)


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def save_state_dict(state: Mapping[str, torch.Tensor], path: str | os.PathLike[str],
                    metadata: Mapping[str, str] | None = None) -> Path:
    """Write a state dict as safetensors, atomically (temporary file + rename).

    Raises:
        OutputError: the file could not be written.
    """
    from safetensors.torch import save

    from remaster.io import write_atomic

    target = Path(path)
    # safetensors refuses non-contiguous and shared-memory tensors; make each its own contiguous copy.
    tensors = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in state.items()}
    write_atomic(target, _canonical_safetensors(save(tensors, metadata=dict(metadata) if metadata else None)))
    return target


def _canonical_safetensors(data: bytes) -> bytes:
    """The same file with its JSON header keys sorted.

    safetensors writes the header from a hash map, so the key order (and the
    file's sha256) changes from run to run although the tensor bytes do not.
    Sorting makes converted weights hash the same every time, which lets us
    pin their sha256.
    """
    import json
    import struct

    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)  # the format keeps the tensor data 8-byte aligned
    return struct.pack("<Q", len(text)) + text + data[8 + length:]
