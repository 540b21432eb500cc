"""Host/device transfers: the pinned ring of non-blocking copies, exercised on the CPU with an engine that defers.

The CUDA engine itself needs a GPU (tests marked ``cuda``); its ordering and
synchronisation logic is :class:`remaster.pipeline.transfer.DeviceToHost`'s, which is
device-independent: :class:`DeferredEngine` lands a copy only when it is waited
for, and fills its "pinned" buffers with a sentinel, so reading before waiting
shows up as wrong bytes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from remaster import Remasterer, io
from remaster.io.intbuffer import IntegerBuffer
from remaster.pipeline import transfer
from remaster.pipeline.stage import Stage
from remaster.plugin.specs import StageInfo, Tiling

SENTINEL = 0xA5


class _Landing:
    def __init__(self, engine: DeferredEngine, target: torch.Tensor, source: torch.Tensor):
        self.engine, self.target, self.source, self.done = engine, target, source, False

    def synchronize(self) -> None:
        if not self.done:
            self.target.copy_(self.source)
            self.done = True
            self.engine.landed += 1


class DeferredEngine:
    """A CopyEngine whose copies land only when waited for (as a real non-blocking copy may)."""

    def __init__(self) -> None:
        self.pinned_bytes: list[int] = []
        self.started = self.landed = 0
        self.uploads: list[torch.device] = []
        self.in_flight: list[_Landing] = []

    def pinned(self, nbytes: int) -> torch.Tensor:
        self.pinned_bytes.append(nbytes)
        return torch.full((nbytes,), SENTINEL, dtype=torch.uint8)

    def start(self, target: torch.Tensor, source: torch.Tensor) -> _Landing:
        self.started += 1
        # Overwritten before landing: a DeviceToHost that read the staging buffer early would see this.
        target.fill_(SENTINEL % (torch.iinfo(target.dtype).max + 1))
        landing = _Landing(self, target, source)
        self.in_flight.append(landing)
        return landing

    def upload(self, tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        self.uploads.append(device)
        return tensor.to(device)


def test_copies_land_only_after_waiting_and_in_order():
    engine = DeferredEngine()
    copier = transfer.DeviceToHost(engine, slots=2)
    host = torch.zeros(6, 4, dtype=torch.uint8)
    copier.copy(host[0:2], torch.full((2, 4), 1, dtype=torch.uint8))
    copier.copy(host[2:4], torch.full((2, 4), 2, dtype=torch.uint8))
    assert engine.landed == 0 and int(host.sum()) == 0  # nothing waited for yet: the host has not read anything
    copier.copy(host[0:2], torch.full((2, 4), 3, dtype=torch.uint8))  # the ring comes round: slot 0 lands first
    assert engine.landed == 1 and host[0].tolist() == [1] * 4
    copier.flush()
    assert engine.landed == 3
    # The rewrite of rows 0-1 (as a retry makes) landed after the first write, never before it.
    assert host[:, 0].tolist() == [3, 3, 2, 2, 0, 0]
    assert engine.pinned_bytes == [8, 8]  # one pinned buffer per slot, reused
    copier.flush()  # nothing in flight: a no-op
    assert engine.landed == 3


def test_a_larger_copy_gets_a_larger_pinned_buffer_and_dtypes_share_it():
    engine = DeferredEngine()
    copier = transfer.DeviceToHost(engine, slots=1)
    small = torch.zeros(2, 3, dtype=torch.uint16)
    big = torch.zeros(4, 3, dtype=torch.uint8)
    copier.copy(small, (torch.arange(6, dtype=torch.int32) + 300).to(torch.uint16).view(2, 3))
    copier.copy(big, torch.arange(12, dtype=torch.uint8).view(4, 3))
    copier.flush()
    assert small.to(torch.int32).flatten().tolist() == list(range(300, 306))
    assert big.flatten().tolist() == list(range(12))
    assert engine.pinned_bytes == [12]  # 12 bytes of uint16 first; the uint8 copy of 12 bytes reuses them


def test_without_an_engine_copies_are_plain_and_immediate():
    copier = transfer.DeviceToHost(None)
    host = torch.zeros(3, dtype=torch.uint8)
    copier.copy(host, torch.tensor([1, 2, 3], dtype=torch.uint8))
    assert host.tolist() == [1, 2, 3]
    with pytest.raises(ValueError):
        transfer.DeviceToHost(None, slots=0)


def test_non_contiguous_sources_are_copied_by_value():
    engine = DeferredEngine()
    copier = transfer.DeviceToHost(engine)
    planes = torch.arange(24, dtype=torch.uint8).view(2, 3, 4)  # (C, H, W), as quantise gives
    host = torch.zeros(3, 4, 2, dtype=torch.uint8)
    copier.copy(host, planes.permute(1, 2, 0))
    copier.flush()
    assert torch.equal(host, planes.permute(1, 2, 0))


def test_the_cpu_has_no_engine_and_uploads_go_through_the_engine_only_to_another_device():
    assert transfer.engine_for(torch.device("cpu")) is None
    engine = DeferredEngine()
    x = torch.ones(1, 3, 2, 2)
    assert transfer.to_device(x, torch.device("cpu"), engine) is x and engine.uploads == []
    assert transfer.to_device(x, torch.device("cpu"), None) is x
    moved = transfer.to_device(x, torch.device("meta"), engine)  # a device that is not the host's
    assert moved.device.type == "meta" and engine.uploads == [torch.device("meta")]


def test_integer_buffer_waits_for_its_copies_before_handing_out_the_image():
    engine = DeferredEngine()
    buffer = IntegerBuffer(4, 3, np.uint8, alpha=True, copier=transfer.DeviceToHost(engine, slots=2))
    rows = torch.linspace(0, 1, 2 * 3 * 3).view(1, 3, 2, 3)
    for top in (0, 2):
        buffer.write(top, rows)
        buffer.write(top, rows[:, :1], alpha=True)
    assert engine.started == 4 and engine.landed < 4
    image = buffer.image(io.load(np.zeros((4, 3, 4), np.uint8)).meta)
    assert engine.landed == 4
    quantised = np.rint(rows[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    assert np.array_equal(image.pixels[0].permute(1, 2, 0).numpy(), np.concatenate([quantised, quantised]))
    assert np.array_equal(image.alpha[0, 0].numpy(), np.concatenate([quantised[..., 0]] * 2))


class _Shift(Stage):
    """A small tiled, local stage at x2 whose output overshoots [0, 1], so the clamp and quantisation matter."""

    def __init__(self) -> None:
        super().__init__()
        self.info = StageInfo(scale=2, tiling=Tiling.SUPPORTED, tile_overlap=2, alpha="process", in_channels=(3,))

    def run(self, pixels, ctx):
        y = pixels * 1.3 - 0.1 + 0.05 * torch.roll(pixels, 1, dims=-1)
        return torch.nn.functional.interpolate(y, scale_factor=2, mode="nearest")


@pytest.mark.parametrize("tile", [0, 12])
def test_a_run_through_the_deferred_engine_gives_the_same_bytes(monkeypatch, tile):
    rgba = np.concatenate([data.astronaut()[100:130, 200:240], np.full((30, 40, 1), 200, np.uint8)], axis=2)
    plain = Remasterer([_Shift()], device="cpu", precision="fp32", tile=tile).run(rgba)
    engines: list[DeferredEngine] = []

    def deferred(device: torch.device) -> DeferredEngine:
        engines.append(DeferredEngine())
        return engines[-1]

    monkeypatch.setattr(transfer, "engine_for", deferred)  # remaster's own seam: the CPU takes the GPU's path
    staged = Remasterer([_Shift()], device="cpu", precision="fp32", tile=tile).run(rgba)
    assert np.array_equal(staged, plain)
    assert len(engines) == 1 and engines[0].started > (2 if tile else 1)  # colour and alpha, band by band
    assert engines[0].landed == engines[0].started


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_the_cuda_engine_lands_the_same_bytes_as_a_plain_copy():
    device = torch.device("cuda")
    copier = transfer.DeviceToHost(transfer.engine_for(device))
    source = torch.randint(0, 256, (64, 48, 3), dtype=torch.uint8)
    host = torch.zeros_like(source)
    for top in range(0, 64, 16):
        copier.copy(host[top:top + 16], source[top:top + 16].to(device))
    copier.flush()
    assert torch.equal(host, source)
    assert transfer.to_device(source, device, copier.engine).cpu().equal(source)
