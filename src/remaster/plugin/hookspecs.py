"""Hook specifications: the calls a remaster plugin can answer.

A plugin is a module (or object) with functions marked ``@remaster.hookimpl``
and named after the specs below, published under the ``remaster`` entry-point
group. Registration goes through a ``register`` callback so that the host can
validate each item, attribute it to its plugin and reject duplicates. An
implementation may accept fewer arguments than the spec lists (pluggy allows
it), which keeps old plugins working when a hook grows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from remaster.plugin.markers import PLUGIN_API_VERSION, PROJECT_NAME, hookimpl, hookspec

if TYPE_CHECKING:  # types only: the hooks' signatures name them, nothing here needs them at run time
    import argparse
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from remaster.plugin.commands import Command
    from remaster.plugin.metrics import MetricSpec
    from remaster.plugin.presets import Preset
    from remaster.plugin.specs import StageSpec
    from remaster.plugin.syntax import StageCall
    from remaster.plugin.vulkan import VulkanDevice
    from remaster.plugin.weights import WeightsSpec

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
    "remaster_register_commands",
    "remaster_add_options",
    "remaster_upscale_pipeline",
    "remaster_item_note",
    "remaster_vulkan_devices",
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


@hookspec
def remaster_register_commands(register: Callable[[Command], None]) -> None:
    """Add commands to the ``remaster`` program by calling ``register(command)`` once per command.

    Must be cheap: data only (the command's ``arguments`` and ``run`` are
    imported when needed). remaster's own commands are registered the same way,
    first, so a name that is taken (``upscale``, or another plugin's) leaves
    the plugin out with an error in ``remaster plugins``.
    """


@hookspec
def remaster_add_options(command: str, parser: argparse.ArgumentParser) -> None:
    """Add options to the ``remaster`` command named ``command`` (``"upscale"``, ``"run"``, a plugin's, ...).

    Called once per command while the CLI builds its parser (for ``--help``
    too), so it must be cheap and only add options: ``if command == "upscale":
    parser.add_argument("--face", ...)``. The parsed values reach the plugin's
    other CLI hooks in ``args``. It may be called more than once per command
    (the host tries it on a copy first); an implementation that raises, or adds
    an option another already has, is reported as a plugin warning and none of
    its options are added.
    """


@hookspec(firstresult=True)
def remaster_upscale_pipeline(options: Mapping[str, Any], upscaler: StageCall,
                              scale: float) -> Sequence[StageCall | str] | None:
    """The pipeline ``remaster upscale`` runs, as stage calls, or ``None`` to leave it to others.

    ``options`` are the parsed option values by name (``options["face"]``; those
    the plugin added among them; read-only), ``upscaler`` the upscaler stage
    chosen (``--model`` or the default one; a model file's path is its name)
    and ``scale`` the output scale (``--scale`` or the upscaler's own). The
    first plugin that answers decides; when none does, the upscaler runs alone
    (resampled to ``--scale``). Raise :class:`remaster.errors.UsageError` for
    option values that cannot work together.
    """


@hookspec
def remaster_item_note(extras: dict[str, Any]) -> str | None:
    """Text for the per-image log line of a run (``a.png -> out/a.png (1.2 s, <note>)``), or ``None``.

    ``extras`` is what the image's stages reported (``ImageMeta.extras``); say
    something only about what your stages reported.
    """


@hookspec(firstresult=True)
def remaster_vulkan_devices() -> Sequence[VulkanDevice] | None:
    """The Vulkan devices the plugin's runtime sees (software ones included), or ``None`` for a plugin that runs
    nothing on Vulkan; the first plugin that answers decides.

    Called only when a pipeline is asked for ``vulkan[:N]``, or for ``auto`` without CUDA while one of its stages
    declares :attr:`StageInfo.vulkan`; importing the runtime belongs here, not at registration. Cache the answer:
    it is asked for each pipeline built. Raise :class:`remaster.errors.UsageError` saying why Vulkan cannot be
    used at all (no Vulkan loader, the runtime not installed) and what to do; ``auto`` then keeps the CPU.
    """
