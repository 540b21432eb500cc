"""Test helpers for stage authors (public API).

Every plugin's test suite should call :func:`check_stage` on each stage it
registers::

    from remaster.testing import check_stage

    def test_my_stage_conforms():
        check_stage("my-upscaler", {"scale": 2})

It builds the stage the way the pipeline does and checks the contract of
:class:`remaster.pipeline.stage.Stage`: output shape, dtype, device and range, no
in-place changes to the input, batches that match single images, and
same-seed determinism. A broken contract raises :class:`AssertionError`
naming the stage and what went wrong.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NoReturn

import torch

from remaster.pipeline.checks import PLAUSIBLE_HIGH, PLAUSIBLE_LOW
from remaster.pipeline.remasterer import prepare_context
from remaster.pipeline.stage import RunContext, Stage, scaled_size
from remaster.plugin.host import get_host
from remaster.plugin.specs import StageSpec

__all__ = ["check_stage", "sample_pixels"]

#: Seed used for stages with a ``seed`` parameter when the caller leaves it unset.
DEFAULT_SEED = 1234


def sample_pixels(batch: int, channels: int, height: int, width: int, *, seed: int = 0) -> torch.Tensor:
    """Reproducible test pixels ``(batch, channels, height, width)`` in [0, 1].

    Half a smooth random field, half fine noise, so stages see both flat
    areas and texture, like a photograph; pure noise would make networks and
    sharp filters overshoot far more than on any real image.
    """
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, channels, max(2, height // 4), max(2, width // 4), generator=generator)
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    fine = torch.rand(batch, channels, height, width, generator=generator)
    return (0.75 * smooth + 0.25 * fine).clamp_(0.0, 1.0)


def _resolve_spec(spec_or_name: StageSpec | str) -> StageSpec:
    if isinstance(spec_or_name, StageSpec):
        return spec_or_name
    from remaster.plugin.host import get_host  # here so that importing this module stays cheap

    return get_host().stages.get(spec_or_name)


def _padded(size: int, min_size: int, multiple_of: int) -> int:
    """``size`` grown as the pipeline pads it: at least ``min_size``, a multiple of ``multiple_of``."""
    size = max(size, min_size)
    return int(math.ceil(size / multiple_of) * multiple_of)


def check_stage(
    spec_or_name: StageSpec | str,
    params: dict[str, Any] | None = None,
    *,
    sizes: Iterable[tuple[int, int]] = ((17, 23), (32, 32)),
    channels: Iterable[int] = (3, 1),
    device: str | torch.device = "cpu",
    value_range: tuple[float, float] = (PLAUSIBLE_LOW, PLAUSIBLE_HIGH),
    atol: float = 1e-4,
) -> None:
    """Check that a stage keeps the :class:`~remaster.pipeline.stage.Stage` contract.

    The stage is built as the pipeline builds it (``spec.resolve_params``,
    ``spec.load_factory()(**params)``, ``prepare(ctx)`` with float32 on ``device``)
    and run on reproducible test pixels (see :func:`sample_pixels`) of every
    size in ``sizes`` and every channel count in ``channels`` the stage
    accepts. Sizes are first grown to the stage's ``min_size`` and
    ``multiple_of``, as the pipeline pads them. For each it checks that:

    * the output is a floating-point tensor on ``device``, shaped
      ``(N, spec.info.channels_out(C), *scaled_size(H, W, scale))``;
    * every value is finite and within ``value_range``: by default what the
      pipeline clamps to [0, 1] without complaint (:data:`PLAUSIBLE_LOW` to
      :data:`PLAUSIBLE_HIGH`, -1 to 2); beyond it the pipeline reports a
      :class:`~remaster.errors.StageContractError` (a 0-255 result, say);
    * the input tensor is left unchanged;
    * a batch of two gives, per image, what running each image alone gives
      (within ``atol``);
    * if the spec has a ``seed`` parameter: running twice with the same seed,
      on the same stage object and on a freshly built one, gives identical
      output. A ``seed`` left unset in ``params`` is set to a fixed value so
      that the batch check is meaningful.

    Args:
        spec_or_name: The spec, or a stage name looked up in the process-wide
            plugin host (:func:`remaster.plugin.host.get_host`).
        params: Stage parameters as a user would give them; defaults fill the rest.
        sizes: Input ``(height, width)`` pairs; odd sizes catch rounding bugs.
        channels: Channel counts to try; those the stage does not accept are skipped.
        device: Where to run (``"cpu"``, ``"cuda"``).
        value_range: Allowed output range before the pipeline's clamping.
        atol: Tolerance between batched and single-image results.

    Raises:
        AssertionError: the stage broke its contract; the message names the
            stage, the input shape and the failed check.
        StageParamError: ``params`` do not fit the stage's schema.
    """
    spec = _resolve_spec(spec_or_name)
    name = spec.name
    torch_device = torch.device(device)
    given = dict(params or {})
    has_seed = any(p.name == "seed" for p in spec.params)
    if has_seed and given.get("seed") is None:
        given["seed"] = DEFAULT_SEED
    resolved = spec.resolve_params(given)
    info = spec.info
    scale = info.scale_for(resolved)

    def fail(message: str) -> NoReturn:
        raise AssertionError(f"stage {name!r}: {message}")

    if torch_device.type not in info.devices:
        fail(f"does not declare support for device {torch_device.type!r} (devices={info.devices})")
    wanted_channels = [c for c in channels if c in info.in_channels]
    if not wanted_channels:
        fail(f"accepts none of the channel counts {tuple(channels)} (in_channels={info.in_channels})")

    def build() -> Stage:
        stage = spec.load_factory()(**resolved)
        if not callable(getattr(stage, "run", None)) or not callable(getattr(stage, "prepare", None)):
            fail(f"factory returned {type(stage).__name__}, which has no run()/prepare()")
        stage.prepare(prepare_context(torch_device, torch.float32, host=get_host()))
        return stage

    stage = build()
    fresh: Stage | None = None

    def run(target: Stage, pixels: torch.Tensor, label: str) -> torch.Tensor:
        ctx = RunContext(device=torch_device, dtype=torch.float32)
        before = pixels.clone()
        try:
            out = target.run(pixels, ctx)
        except Exception as exc:
            raise AssertionError(f"stage {name!r}: run() raised {type(exc).__name__} on {label}: {exc}") from exc
        if not torch.equal(pixels, before):
            fail(f"modified its input tensor in place on {label}")
        if not isinstance(out, torch.Tensor):
            fail(f"returned {type(out).__name__} instead of a tensor on {label}")
        if not out.is_floating_point():
            fail(f"returned dtype {out.dtype} on {label}; expected a float tensor")
        if out.device.type != torch_device.type:
            fail(f"returned a tensor on {out.device} for input on {torch_device} ({label})")
        return out

    for height, width in sizes:
        h = _padded(height, info.min_size, info.multiple_of)
        w = _padded(width, info.min_size, info.multiple_of)
        for c in wanted_channels:
            batch = sample_pixels(2, c, h, w, seed=h * 1000 + w + c).to(torch_device)
            label = f"input (2, {c}, {h}, {w})"
            out = run(stage, batch, label)
            expected = (2, info.channels_out(c), *scaled_size(h, w, scale))
            if tuple(out.shape) != expected:
                fail(f"output shape {tuple(out.shape)} for {label}; expected {expected} (scale {scale:g})")
            if not torch.isfinite(out).all():
                fail(f"output has NaN or infinite values for {label}")
            low, high = float(out.min()), float(out.max())
            if low < value_range[0] or high > value_range[1]:
                fail(f"output range [{low:.4f}, {high:.4f}] for {label} leaves {list(value_range)}")
            for i in range(2):
                single = run(stage, batch[i : i + 1].clone(), f"image {i} of {label} alone")
                difference = float((single[0].float() - out[i].float()).abs().max())
                if difference > atol:
                    fail(f"image {i} of {label} differs by {difference:.3g} between batched and single runs")
            if has_seed:
                again = run(stage, batch, f"{label}, second run")
                if not torch.equal(again, out):
                    fail(f"two runs with seed={resolved['seed']} differ on {label}")
                fresh = fresh or build()
                rebuilt = run(fresh, batch, f"{label}, rebuilt stage")
                if not torch.equal(rebuilt, out):
                    fail(f"a freshly built stage with seed={resolved['seed']} gives a different result on {label}")
