"""Copies between host and device: pinned staging buffers and non-blocking copies on CUDA, plain copies elsewhere.

Only the final integer image crosses from the GPU to the host, band by band
(:class:`~remaster.io.intbuffer.IntegerBuffer`). A plain ``host.copy_(cuda)``
into ordinary (pageable) memory makes the host wait for the GPU on every band
and goes through the driver's own bounce buffer. Here each band is copied
with ``non_blocking=True`` into one of a few page-locked (pinned) staging
buffers on a copy stream of its own, so the host goes on queueing the next
tiles while the copy engine moves the integers; a CUDA event per band says
when its bytes have landed, and only then are they copied into the final
host array. The staging buffers are reused in turn (a ring), so pinned memory
stays a few MB whatever the image size, and the bands land in the order they
were written (a retry that rewrites rows is never overtaken by an older copy).

The CUDA calls sit behind :class:`CopyEngine`, so that the ordering and
synchronisation logic runs on the CPU in the tests with an engine that
defers its copies (:class:`DeviceToHost` works the same with any engine).
On the CPU there is no engine and every copy is the plain one.
"""

from __future__ import annotations

from typing import Protocol

import torch

__all__ = ["CopyEngine", "Completion", "CudaCopyEngine", "DeviceToHost", "engine_for", "to_device"]


class Completion(Protocol):
    """What :meth:`CopyEngine.start` returns: something to wait on until the copy has landed."""

    def synchronize(self) -> None:
        """Block until the copy is complete (``torch.cuda.Event.synchronize``)."""


class CopyEngine(Protocol):
    """The device-specific half of the transfers: pinned memory and asynchronous copies."""

    def pinned(self, nbytes: int) -> torch.Tensor:
        """A page-locked ``uint8`` host tensor of ``nbytes`` bytes."""

    def start(self, target: torch.Tensor, source: torch.Tensor) -> Completion:
        """Begin copying device ``source`` into pinned host ``target`` (same shape and dtype) without blocking.

        The copy is ordered after the work already queued that produces ``source``.
        """

    def upload(self, tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        """``tensor`` (host) on ``device``, copied without blocking the host where the engine can."""


class CudaCopyEngine:
    """:class:`CopyEngine` for one CUDA device: ``cudaHostAlloc`` memory, a copy stream, one event per copy."""

    def __init__(self, device: torch.device):
        self.device = device
        self._stream = torch.cuda.Stream(device)

    def pinned(self, nbytes: int) -> torch.Tensor:
        return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)

    def start(self, target: torch.Tensor, source: torch.Tensor) -> Completion:
        # The copy stream waits for the compute stream's work up to now (the quantisation of ``source``).
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            target.copy_(source, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self._stream)
        # No record_stream: DeviceToHost holds ``source`` until the event has completed, so its memory
        # cannot go back to the compute stream's pool while the copy stream still reads it.
        return event

    def upload(self, tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        # pin_memory() takes a buffer from torch's caching host allocator, which keeps it alive until the
        # copy queued on the current stream is done; later kernels on that stream are ordered after it.
        return tensor.pin_memory().to(device, non_blocking=True)


def engine_for(device: torch.device) -> CopyEngine | None:
    """The :class:`CopyEngine` for transfers to and from ``device``; ``None`` (plain copies) unless it is CUDA."""
    if device.type == "cuda" and torch.cuda.is_available():
        return CudaCopyEngine(device)
    return None


def to_device(tensor: torch.Tensor, device: torch.device, engine: CopyEngine | None = None) -> torch.Tensor:
    """``tensor`` on ``device``: from the host through pinned memory without blocking when ``engine`` is given.

    Without an engine, or when ``tensor`` is not on the host or already on ``device``, it is ``tensor.to(device)``.
    """
    if engine is None or tensor.device.type != "cpu" or tensor.device == device:
        return tensor.to(device)
    return engine.upload(tensor, device)


class DeviceToHost:
    """Copies device tensors into host tensors, through a ring of pinned buffers when an engine is given.

    Args:
        engine: The device's :class:`CopyEngine`, or ``None`` for plain (blocking) copies.
        slots: How many copies may be in flight at once; each holds one pinned buffer.

    :meth:`copy` returns at once; the host target holds the data only after
    :meth:`flush` (or after the ring came round to that copy's buffer again).
    """

    def __init__(self, engine: CopyEngine | None = None, *, slots: int = 3):
        if slots < 1:
            raise ValueError(f"DeviceToHost needs at least one slot, got {slots}")
        self.engine = engine
        self._buffers: list[torch.Tensor | None] = [None] * slots
        # Per slot, the copy in flight: (host target, the staging view it lands in, the device source, completion).
        self._pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, Completion] | None] = [None] * slots
        self._next = 0

    def copy(self, target: torch.Tensor, source: torch.Tensor) -> None:
        """Copy ``source`` into ``target`` (a host tensor or a view of one, same shape); see :meth:`flush`."""
        if self.engine is None:
            self.flush()  # an older copy in flight to the same rows must not land after this one
            target.copy_(source)
            return
        source = source.contiguous()
        slot = self._next
        self._next = (slot + 1) % len(self._buffers)
        self._land(slot)
        nbytes = source.numel() * source.element_size()
        buffer = self._buffers[slot]
        if buffer is None or buffer.numel() < nbytes:
            buffer = self._buffers[slot] = self.engine.pinned(nbytes)
        staging = buffer[:nbytes].view(source.dtype).view(source.shape)
        # The source is kept until the copy has landed: its device memory must outlive the copy.
        self._pending[slot] = (target, staging, source, self.engine.start(staging, source))

    def flush(self) -> None:
        """Wait for every copy in flight and put its data into its target, oldest first."""
        for offset in range(len(self._pending)):
            self._land((self._next + offset) % len(self._pending))

    def _land(self, slot: int) -> None:
        pending = self._pending[slot]
        if pending is None:
            return
        self._pending[slot] = None
        target, staging, _source, completion = pending
        completion.synchronize()
        target.copy_(staging)
