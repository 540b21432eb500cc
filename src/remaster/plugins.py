"""Plugin loading: built-ins and entry points, once, lazily.

Built-in stages and metrics are plugins like any other
(``remaster.stages.builtin``, ``remaster.metrics.builtin``), registered through
the same hooks as third-party ones. Third-party plugins are
modules published under the ``remaster`` entry-point group. A plugin that
fails to import or registers something invalid is recorded with its error and
left out; the others keep working.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from .errors import InputError, PluginError, RemasterError, StageError
from .plugin import hookspecs
from .plugin.metrics import MetricRegistry, MetricSpec
from .plugin.presets import Preset, PresetRegistry
from .plugin.registries import StageRegistry
from .plugin.specs import StageSpec
from .plugin.weights import WeightsRegistry, WeightsSpec

__all__ = ["PluginInfo", "PluginHost", "get_host"]

BUILTIN_PLUGINS = ("remaster.stages.builtin", "remaster.metrics.builtin")


@dataclass
class PluginInfo:
    """One plugin as loaded: where it came from and what it registered.

    Attributes:
        name: Entry-point name (or module name for built-ins).
        version: Version of the distribution that ships it.
        distribution: Name of that distribution.
        stages: Names of the stages it registered.
        weights: Names of the weights files it registered.
        metrics: Names of the metrics it registered.
        presets: Ids of the editor presets it registered.
        error: Why it was left out, if it was.
    """

    name: str
    version: str | None = None
    distribution: str | None = None
    stages: list[str] = field(default_factory=list)
    weights: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    presets: list[str] = field(default_factory=list)
    error: PluginError | None = None


class PluginHost:
    """A pluggy manager plus the stage, weights, metric and preset registries it fills.

    Args:
        load_entry_points: Also load third-party plugins from the ``remaster``
            entry-point group (tests turn it off to get only built-ins).
        extra_plugins: Further plugin objects or modules to register, for
            tests and embedding applications.
    """

    def __init__(self, *, load_entry_points: bool = True, extra_plugins: tuple[Any, ...] = ()):
        self._load_entry_points = load_entry_points
        self._extra = extra_plugins
        self._lock = threading.Lock()
        self._loaded = False
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.stages = StageRegistry()
        self.weights = WeightsRegistry()
        self.metrics = MetricRegistry()
        self.presets = PresetRegistry()
        self.plugins: list[PluginInfo] = []

    def ensure_loaded(self) -> PluginHost:
        """Load every plugin the first time this is called; a no-op afterwards."""
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True
        return self

    def _load(self) -> None:
        from importlib.metadata import version as dist_version

        for module_name in BUILTIN_PLUGINS:
            self.add_plugin(importlib.import_module(module_name), name=module_name, version=dist_version("remaster"),
                            distribution="remaster")
        for plugin in self._extra:
            self.add_plugin(plugin, name=getattr(plugin, "__name__", type(plugin).__name__))
        if self._load_entry_points:
            for ep in entry_points(group=hookspecs.PROJECT_NAME):
                dist = getattr(ep, "dist", None)
                info_kwargs = {
                    "version": dist.version if dist else None,
                    "distribution": dist.metadata["Name"] if dist else None,
                }
                if self.manager.has_plugin(ep.name) or any(p.name == ep.name for p in self.plugins):
                    continue
                try:
                    plugin = ep.load()
                except Exception as exc:  # any import failure must not take the others down
                    self.plugins.append(PluginInfo(
                        ep.name, **info_kwargs,
                        error=PluginError(f"failed to import ({type(exc).__name__}: {exc})", path=ep.name,
                                          hint=f"reinstall or uninstall {info_kwargs['distribution'] or ep.value}"),
                    ))
                    continue
                self.add_plugin(plugin, name=ep.name, **info_kwargs)

    def add_plugin(self, plugin: ModuleType | object, *, name: str, version: str | None = None,
                   distribution: str | None = None) -> PluginInfo:
        """Register one plugin and collect its stages, weights, metrics and presets; failures are recorded, not raised."""
        info = PluginInfo(name, version=version, distribution=distribution)
        self.plugins.append(info)
        try:
            self.manager.register(plugin, name=name)
        except Exception as exc:  # e.g. a hookimpl with wrong arguments
            info.error = PluginError(f"cannot be registered: {exc}", path=name)
            return info
        try:
            self.manager.check_pending()  # a misspelt hook name would otherwise be ignored silently
        except pluggy.PluginValidationError as exc:
            self.manager.unregister(name=name)
            info.error = PluginError(f"cannot be registered: {exc}", path=name,
                                     hint="hook names must match remaster.hookspecs")
            return info
        collected: list[StageSpec] = []
        collected_weights: list[WeightsSpec] = []
        collected_metrics: list[MetricSpec] = []
        collected_presets: list[Preset] = []
        what = "stages"
        try:
            impl = self._only(name, "remaster_register_stages")
            if impl is not None:
                impl(register=collected.append)
            what = "weights"
            impl = self._only(name, "remaster_register_weights")
            if impl is not None:
                impl(register=collected_weights.append)
            what = "metrics"
            impl = self._only(name, "remaster_register_metrics")
            if impl is not None:
                impl(register=collected_metrics.append)
            what = "presets"
            impl = self._only(name, "remaster_register_presets")
            if impl is not None:
                impl(register=collected_presets.append)
            # All or nothing per plugin: weights, metrics and presets are validated before the stages are added,
            # and added after.
            weights_batch = self.weights.prepare(collected_weights, plugin=name)
            metrics_batch = self.metrics.prepare(collected_metrics, plugin=name)
            presets_batch = self.presets.prepare(collected_presets, plugin=name)
            self.stages.add_all(collected, plugin=name)
            self.weights.commit(weights_batch)
            self.metrics.commit(metrics_batch)
            self.presets.commit(presets_batch)
        except RemasterError as exc:
            info.error = exc if isinstance(exc, PluginError) else PluginError(str(exc), path=name)
        except Exception as exc:
            info.error = PluginError(f"raised {type(exc).__name__} while registering {what}: {exc}", path=name)
        if info.error is not None:
            self.manager.unregister(name=name)
            return info
        info.stages = [spec.name for spec in collected]
        info.weights = [spec.name for spec in collected_weights]
        info.metrics = [spec.name for spec in collected_metrics]
        info.presets = [spec.name for spec in collected_presets]
        return info

    def _only(self, plugin_name: str, hook_name: str) -> Any:
        """A hook caller restricted to one plugin, so each plugin's output is attributed to it."""
        hook = getattr(self.manager.hook, hook_name)
        others = [p for p in self.manager.get_plugins() if self.manager.get_name(p) != plugin_name]
        if not any(self.manager.get_name(impl.plugin) == plugin_name for impl in hook.get_hookimpls()):
            return None
        return self.manager.subset_hook_caller(hook_name, remove_plugins=others)

    def stage_from_file(self, path: Path) -> StageSpec:
        """The spec of a stage that runs the model file ``path``, from the first plugin that can.

        Raises:
            InputError: the file does not exist.
            StageError: no installed plugin can run it.
        """
        if not path.is_file():
            raise InputError("no such model file", path=path,
                             hint="give the path of a .pth or .safetensors file, or a stage name from 'remaster stages'")
        spec = self.manager.hook.remaster_stage_from_file(path=path)
        if spec is None:
            raise StageError("no installed plugin can run this model file", path=path,
                             hint="remaster-realesrgan runs ESRGAN-family upscalers; see 'remaster plugins'")
        return spec

    @property
    def errors(self) -> list[PluginError]:
        """Errors of the plugins that were left out."""
        return [p.error for p in self.plugins if p.error is not None]


_default_host: PluginHost | None = None
_default_lock = threading.Lock()


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded on first call."""
    global _default_host
    with _default_lock:
        if _default_host is None:
            _default_host = PluginHost()
    return _default_host.ensure_loaded()
