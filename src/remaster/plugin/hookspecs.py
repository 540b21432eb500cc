"""Hook specifications: the calls a remaster plugin can answer.

A plugin is a module (or object) with functions marked ``@remaster.hookimpl``
and named after the specs below, published under the ``remaster`` entry-point
group. Registration goes through a ``register`` callback so that the host can
validate each item, attribute it to its plugin and reject duplicates. An
implementation may accept fewer arguments than the spec lists (pluggy allows
it), which keeps old plugins working when a hook grows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .markers import PLUGIN_API_VERSION, PROJECT_NAME, hookimpl, hookspec

if TYPE_CHECKING:  # types only: the hooks' signatures name them, nothing here needs them at run time
    from pathlib import Path

    from .metrics import MetricSpec
    from .presets import Preset
    from .specs import StageSpec
    from .weights import WeightsSpec

__all__ = [
    "PROJECT_NAME",
    "PLUGIN_API_VERSION",
    "hookspec",
    "hookimpl",
    "remaster_register_stages",
    "remaster_register_weights",
    "remaster_register_metrics",
    "remaster_stage_from_file",
    "remaster_register_presets",
]

@hookspec
def remaster_register_stages(register: Callable[[StageSpec], None]) -> None:
    """Register stage specs by calling ``register(spec)`` once per stage.

    Must be cheap: import no model code, build no network, read no weights and
    touch no network. The spec's ``factory`` is imported when a pipeline first
    uses the stage.
    """


@hookspec
def remaster_register_weights(register: Callable[[WeightsSpec], None]) -> None:
    """Register the weights files the plugin's stages need by calling ``register(spec)`` once per file.

    Must be cheap: touch no network and read no files (not even the weights).
    remaster checks, downloads, imports or produces the file only when asked
    (``remaster weights fetch``) or when a stage calls
    ``remaster.weights.get_manager().ensure(name)``; a spec's ``producer`` and
    ``check`` are given as ``"package.module:function"`` and imported only then.
    """


@hookspec
def remaster_register_metrics(register: Callable[[MetricSpec], None]) -> None:
    """Register image-quality metrics by calling ``register(spec)`` once per metric.

    Must be cheap: import no model code, build no network, read no weights and
    touch no network. The spec's ``func`` is imported when the metric is first
    computed; weights it needs are registered with ``remaster_register_weights``
    and obtained through ``remaster.weights.get_manager().ensure(name)`` then.
    """


@hookspec(firstresult=True)
def remaster_stage_from_file(path: Path) -> StageSpec | None:
    """Return a stage spec that runs the model stored in ``path``, or ``None``.

    Called when a pipeline names a file (``--model net.pth``,
    ``Remasterer(["best.safetensors"])``). Plugins are asked in turn until one
    answers; return ``None`` quickly for files that are not yours. Read the
    file only with :func:`remaster.weights.load_state_dict` (never unpickle it).
    """


@hookspec
def remaster_register_presets(register: Callable[[Preset], None]) -> None:
    """Register editor presets (the choices of the GIMP and Krita dialogs) by calling ``register(preset)``.

    Must be cheap: data only. A preset names a pipeline of stages; ``remaster
    serve`` lists it at ``GET /v1/presets`` only while all those stages (and the
    preset's ``requires``) are installed, so a plugin may offer presets that
    use another plugin's stages.
    """
