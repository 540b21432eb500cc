"""What a pipeline does with an image of a given bit depth: each stage's device and precision, decided once.

:class:`Plan` is computed once per (precision request, bit depth) by :func:`make_plan` and kept by the
:class:`~remaster.Remasterer`; describing a pipeline, preparing it and running it all read the same plan, so the
precision of a stage is decided in one place (:func:`remaster.pipeline.devices.choose_precision`, called here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from remaster.errors import UsageError
from remaster.pipeline import devices
from remaster.pipeline.configured import ConfiguredStage
from remaster.plugin.specs import precision_name
from remaster.plugin.vulkan import VulkanDevice

__all__ = ["Plan", "StepPlan", "make_plan", "ran_report"]


@dataclass(frozen=True)
class StepPlan:
    """One stage of a plan.

    Attributes:
        stage: The configured stage.
        device: Where its tensors are and it runs (the CPU for a stage that runs only there, whatever the
            pipeline's device; the CPU too for a stage on Vulkan, which gets host tensors).
        choice: The precision it runs in, and why when that is not what was asked.
        vulkan: The Vulkan device it computes on, or ``None``.
        note: Why it does not run on the pipeline's device, when it does not (a stage that cannot run on
            Vulkan in a Vulkan pipeline runs on the CPU); ``None`` otherwise.
    """

    stage: ConfiguredStage
    device: torch.device
    choice: devices.PrecisionChoice
    vulkan: VulkanDevice | None = None
    note: str | None = None

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype (:attr:`choice`'s)."""
        return self.choice.dtype


@dataclass(frozen=True)
class Plan:
    """Every stage's device and precision for images of one bit depth, under one precision request.

    Attributes:
        requested: What the user asked for (``"auto"``, ``"bf16"``, ...).
        bit_depth: Bits per sample of the images it is for (8, 16, or 32 for float).
        steps: One :class:`StepPlan` per stage, in order.
    """

    requested: str
    bit_depth: int
    steps: tuple[StepPlan, ...]

    def describe(self) -> str:
        """``"realesrgan-x4plus [bf16] | lanczos(scale=0.5) [fp32]"``."""
        return " | ".join(f"{step.stage} [{step.choice.name}]" for step in self.steps)

    def report(self) -> list[dict[str, str]]:
        """Per stage, what ``meta.extras["stages"]`` says of a run that went as planned."""
        return [ran_report(step.stage, step.device, step.dtype, step.vulkan) for step in self.steps]


def make_plan(stages: Sequence[ConfiguredStage], device: torch.device, requested: str, bit_depth: int,
              vulkan: VulkanDevice | None = None) -> Plan:
    """The plan of ``stages`` on ``device`` for images of ``bit_depth`` bits, under the request ``requested``.

    With ``vulkan`` (the pipeline runs on that Vulkan device; ``device`` is then the CPU), the stages that declare
    :attr:`StageInfo.vulkan` compute there and the others run on the CPU, each with a :attr:`StepPlan.note`.

    Raises:
        UsageError: a stage with no precision that runs on its device, or bf16 on Vulkan (naming the stage).
    """
    steps = []
    for stage in stages:
        stage_device = device if device.type in stage.info.devices else torch.device("cpu")
        stage_vulkan = vulkan if vulkan is not None and stage.info.vulkan else None
        note = None if vulkan is None or stage_vulkan is not None else "does not run on Vulkan; runs on the CPU"
        try:
            choice = devices.choose_precision(requested, stage_device, stage.info.dtypes, bit_depth=bit_depth,
                                              vulkan=stage_vulkan)
        except UsageError as exc:
            raise UsageError(exc.message, path=stage.name, hint=exc.hint) from None
        steps.append(StepPlan(stage, stage_device, choice, stage_vulkan, note))
    return Plan(requested, bit_depth, tuple(steps))


def ran_report(stage: ConfiguredStage, device: torch.device, dtype: torch.dtype,
               vulkan: VulkanDevice | None = None) -> dict[str, str]:
    """What ``meta.extras["stages"]`` says of one stage's run: its name, device (``"vulkan:0"`` for a stage that
    computed on Vulkan) and precision."""
    return {"stage": str(stage), "device": str(vulkan if vulkan is not None else device),
            "precision": precision_name(dtype)}
