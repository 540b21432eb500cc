"""Stages as a pipeline holds them: a registered spec with its parameters resolved, built on first use.

Also which spec a name means (a registered stage, or a model file asked of the plugins) and the default upscaler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from remaster.errors import RemasterError, StageError
from remaster.pipeline.artifact_build import ARTIFACT_FORMATS
from remaster.pipeline.artifact_run import ArtifactRun, CompileSettings
from remaster.pipeline.compiling import CompiledRun
from remaster.pipeline.options import PipelineOptions
from remaster.pipeline.stage import PrepareContext, Stage
from remaster.plugin.host import PluginHost
from remaster.plugin.specs import StageInfo, StageSpec, precision_name
from remaster.plugin.syntax import names_model_file
from remaster.plugin.vulkan import VulkanDevice

__all__ = ["ConfiguredStage", "ContextFactory", "DEFAULT_UPSCALER", "FALLBACK_UPSCALER", "default_upscaler",
           "resolve_spec", "from_stage_object"]

log = logging.getLogger("remaster.pipeline")

class ContextFactory(Protocol):
    """Makes the :class:`PrepareContext` of a stage on a device and dtype (and Vulkan device, for a stage that
    computes there): the running pipeline's host, weights, options."""

    def __call__(self, device: torch.device, dtype: torch.dtype, *,
                 vulkan: VulkanDevice | None = None) -> PrepareContext: ...

#: What ``Remasterer()`` and ``remaster upscale`` run when no stages or model are given.
DEFAULT_UPSCALER = "realesrgan-x4plus"

#: Used instead, with a warning, when the remaster-realesrgan plugin is not installed.
FALLBACK_UPSCALER = "lanczos"


def default_upscaler(host: PluginHost) -> str:
    """:data:`DEFAULT_UPSCALER` if a plugin provides it, else Lanczos with a warning."""
    if DEFAULT_UPSCALER in host.stages:
        return DEFAULT_UPSCALER
    log.warning("%s is not installed (pip install remaster-realesrgan); upscaling with %s instead",
                DEFAULT_UPSCALER, FALLBACK_UPSCALER)
    return FALLBACK_UPSCALER


def resolve_spec(name: str, host: PluginHost) -> StageSpec:
    """The spec for a stage name, or for a model file path (asked of the plugins)."""
    if name in host.stages:
        return host.stages.get(name)
    if names_model_file(name):
        return host.stage_from_file(Path(name).expanduser())
    return host.stages.get(name)  # raises UnknownStageError with close matches




@dataclass
class ConfiguredStage:
    """A stage with its parameters resolved; the implementation is built on first use.

    Attributes:
        spec: The registered description.
        params: Validated parameters including defaults.
        context: Makes the :class:`PrepareContext` the stage is prepared with (the pipeline that holds it sets it).
    """

    spec: StageSpec
    params: dict[str, Any]
    context: ContextFactory | None = field(default=None, repr=False)
    #: The stage object a user made (``Remasterer([MyStage()])``): the only one there is, prepared again when
    #: the device or dtype changes. Registered stages get one object per (device, dtype) instead.
    given: Stage | None = field(default=None, repr=False)
    _instances: dict[tuple[torch.device, torch.dtype, int | None], Stage] = field(default_factory=dict, repr=False)
    _compiled: dict[int, CompiledRun | ArtifactRun] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def info(self) -> StageInfo:
        return self.spec.info

    @property
    def scale(self) -> float:
        """The factor the user asked for."""
        return self.spec.info.scale_for(self.params)

    @property
    def run_scale(self) -> float:
        """The factor the stage itself runs at (its native one when the pipeline resamples the rest)."""
        return self.spec.info.scale if self.spec.info.resample else self.scale

    @property
    def alpha(self) -> str:
        """How alpha passes: a stage parameter named ``alpha`` overrides ``StageInfo.alpha``."""
        return str(self.params.get("alpha") or self.spec.info.alpha)

    def __str__(self) -> str:
        changed = {k: v for k, v in self.params.items()
                   if any(p.name == k and p.default != v for p in self.spec.params)}
        return self.name + (f"({', '.join(f'{k}={v!r}' for k, v in changed.items())})" if changed else "")

    def run_notes(self, device: torch.device, dtype: torch.dtype,
                  vulkan: VulkanDevice | None = None) -> dict[str, Any]:
        """What ``meta.extras["stages"]`` says about how the last run in ``dtype`` went, besides device and precision:
        ``weights`` (``"fp16"``/``"bf16"``) when the stage ran with half weights; with ``compile``, ``compiled``
        (the backend, or ``"eager"`` after a failure) and ``compile_seconds`` on the run that compiled."""
        notes: dict[str, Any] = {}
        instance = self._instances.get((device, dtype, None if vulkan is None else vulkan.index))
        weights = getattr(instance, "weights_dtype", None)
        if weights is not None and weights == dtype != torch.float32:
            notes["weights"] = precision_name(weights)
        compiled = self._compiled.get(id(instance)) if instance is not None else None
        if compiled is not None:
            notes.update(compiled.take_report())
        return notes

    def compiled_run(self, instance: Stage, backend: str | Callable[..., Any]) -> CompiledRun:
        """``instance``'s ``run`` compiled (once per object; compilation itself happens on the first call)."""
        compiled = self._compiled.get(id(instance))
        if not isinstance(compiled, CompiledRun):
            # A stage that builds its network on first use (its compile target) builds it now, outside the graph.
            target = instance.compile_target() if hasattr(instance, "compile_target") else None
            if target is not None:
                target.network()
            compiled = self._compiled[id(instance)] = CompiledRun(instance.run, name=self.name, backend=backend)
        return compiled

    def artifact_run(self, instance: Stage, device: torch.device, options: PipelineOptions,
                     settings: CompileSettings | None) -> ArtifactRun | None:
        """``instance``'s ``run`` through cached compiled artifacts (once per object), or ``None`` where they do not
        apply: not on the CPU, a backend that compiles in the process, no settings, or a stage without a
        :meth:`~Stage.compile_target`."""
        known = self._compiled.get(id(instance))
        if isinstance(known, ArtifactRun):
            return known
        backend = options.compile_backend
        if settings is None or device.type != "cpu" or not isinstance(backend, str) or backend not in ARTIFACT_FORMATS:
            return None
        target = instance.compile_target() if hasattr(instance, "compile_target") else None
        if target is None:
            return None
        run = self._compiled[id(instance)] = ArtifactRun(instance.run, target, name=self.name, mode=options.compile,
                                                         fmt=backend, settings=settings)
        return run

    def instance(self, device: torch.device, dtype: torch.dtype, context: ContextFactory | None = None, *,
                 vulkan: VulkanDevice | None = None) -> Stage:
        """The stage object for ``device``/``dtype``, built and prepared the first time it is asked for.

        Each (device, dtype, Vulkan device) has its own prepared object, kept for the pipeline's life: a folder of
        8- and 16-bit images (bf16 and fp32 under ``auto`` on some CPUs), or an fp32 retry after NaN, prepares each
        once, not once per image. A stage object the user made is the exception: there is one, prepared again on a
        change.

        ``context`` makes the :class:`PrepareContext` (the running :class:`Remasterer`'s host, weights and
        limits); without one, :attr:`context`. ``vulkan``: the Vulkan device the stage computes on (``device``
        is then the CPU, where its pixels live).

        Raises:
            StageError: the stage could not be built or prepared.
        """
        key = (device, dtype, None if vulkan is None else vulkan.index)
        known = self._instances.get(key)
        if known is not None:
            return known
        if self.given is not None:
            stage = self.given
            self._instances.clear()  # prepared for another device or dtype until now
        else:
            factory = self.spec.load_factory()
            try:
                stage = factory(**self.params)
            except RemasterError:
                raise
            except Exception as exc:
                raise StageError(f"could not be built: {type(exc).__name__}: {exc}", path=self.name) from exc
        try:
            make_context = context or self.context
            if make_context is None:
                raise StageError("has no pipeline to be prepared in", path=self.name,
                                 hint="configure it through a Remasterer")
            stage.prepare(make_context(device, dtype, vulkan=vulkan))
        except RemasterError:
            raise
        except Exception as exc:  # a plugin's own failure while loading its model: name the stage
            raise StageError(f"could not be prepared: {type(exc).__name__}: {exc}", path=self.name) from exc
        self._instances[key] = stage
        return stage


def from_stage_object(stage: Stage, context: ContextFactory | None = None) -> ConfiguredStage:
    """Wrap a user-made stage object so it runs like a registered one."""
    spec = getattr(stage, "spec", None)
    if not isinstance(spec, StageSpec):
        info = getattr(stage, "info", StageInfo())
        name = getattr(stage, "name", type(stage).__name__.lower())
        spec = StageSpec(name=name, kind=getattr(stage, "kind", "filter"), factory=lambda **_: stage, info=info)  # type: ignore[arg-type]
    return ConfiguredStage(spec, dict(getattr(stage, "params", {}) or {}), context, given=stage)
