"""Plugin loading: built-ins and entry points, once, lazily.

Built-in stages and metrics are plugins like any other
(``remaster.stages.builtin``, ``remaster.metrics.builtin``), registered through
the same hooks as third-party ones; an application adds its own built-ins the
same way (the ``remaster`` command hands the host the module of its own commands,
see :func:`get_host`), so the host never names the application. Third-party plugins are
modules published under the ``remaster`` entry-point group. A plugin that
fails to import or registers something invalid is recorded with its error and
left out; the others keep working.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from remaster.errors import InputError, PluginError, RemasterError, StageError, UsageError
from remaster.plugin import hookspecs
from remaster.plugin.commands import CommandRegistry
from remaster.plugin.metrics import MetricRegistry
from remaster.plugin.presets import PresetRegistry
from remaster.plugin.registries import SpecRegistry, StageRegistry
from remaster.plugin.specs import StageSpec
from remaster.plugin.syntax import is_existing_file
from remaster.plugin.vulkan import VulkanDevice
from remaster.plugin.weights import WeightsRegistry

__all__ = ["PluginInfo", "PluginHost", "get_host", "replace_host", "BUILTIN_PLUGINS"]

#: The library's own plugins, loaded first by every host, in this order.
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
        commands: Names of the ``remaster`` commands it registered.
        error: Why it was left out, if it was.
        warnings: Hooks of it that failed after it was loaded (its CLI options, a log note); it stays in.
    """

    name: str
    version: str | None = None
    distribution: str | None = None
    stages: list[str] = field(default_factory=list)
    weights: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    presets: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    error: PluginError | None = None
    warnings: list[PluginError] = field(default_factory=list)


class PluginHost:
    """A pluggy manager plus the stage, weights, metric, preset and command registries it fills.

    Plugins load in this order: :data:`BUILTIN_PLUGINS`, ``builtins``, ``extra_plugins``, then the entry
    points; a name an earlier plugin registered cannot be taken by a later one.

    Args:
        load_entry_points: Also load third-party plugins from the ``remaster``
            entry-point group (tests turn it off to get only built-ins).
        extra_plugins: Further plugin objects or modules to register, for
            tests and embedding applications.
        builtins: Further plugin modules an application ships as its own (credited to the ``remaster``
            distribution, loaded before third-party plugins, their failures raised): the ``remaster`` command
            passes the module of its own commands this way, so the host never names the command.
    """

    def __init__(self, *, load_entry_points: bool = True, extra_plugins: tuple[Any, ...] = (),
                 builtins: Sequence[ModuleType] = ()):
        self._load_entry_points = load_entry_points
        self._extra = extra_plugins
        self._builtins: list[str | ModuleType] = [*BUILTIN_PLUGINS]
        self._builtin_names: set[str] = set(BUILTIN_PLUGINS)
        for module in builtins:
            self._join_builtins(module)
        self._lock = threading.Lock()
        self._loaded = False
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)
        self.stages = StageRegistry()
        self.weights = WeightsRegistry()
        self.metrics = MetricRegistry()
        self.presets = PresetRegistry()
        self.commands = CommandRegistry()
        self.plugins: list[PluginInfo] = []
        self._warned: set[tuple[str, str]] = set()

    def ensure_loaded(self) -> PluginHost:
        """Load every plugin the first time this is called; a no-op afterwards."""
        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True
        return self

    def add_builtin(self, module: ModuleType) -> PluginInfo | None:
        """Make ``module`` one of this host's built-in plugins (an application's own, like the CLI's commands).

        Before the host is loaded it joins the built-ins, ahead of third-party plugins; on a host already loaded
        (one a test or an embedding application made) it is added now, unless it is there already.

        Returns:
            What it registered when added now; ``None`` when it waits for the load or was there already.
        """
        with self._lock:
            if not self._loaded:
                self._join_builtins(module)
                return None
        if any(p.name == module.__name__ for p in self.plugins):
            return None
        self._join_builtins(module)  # its commands are remaster's own: their failures are bugs, not warnings
        return self._add_builtin(module)

    def _join_builtins(self, module: ModuleType) -> None:
        if module.__name__ not in self._builtin_names:
            self._builtin_names.add(module.__name__)
            self._builtins.append(module)

    def _add_builtin(self, module: str | ModuleType) -> PluginInfo:
        from importlib.metadata import version as dist_version

        plugin = importlib.import_module(module) if isinstance(module, str) else module
        return self.add_plugin(plugin, name=plugin.__name__, version=dist_version("remaster"),
                               distribution="remaster")

    def _load(self) -> None:
        for module in list(self._builtins):
            self._add_builtin(module)
        for plugin in self._extra:
            self.add_plugin(plugin, name=getattr(plugin, "__name__", type(plugin).__name__))
        if self._load_entry_points:
            for ep in entry_points(group=hookspecs.PROJECT_NAME):
                dist = getattr(ep, "dist", None)
                version: str | None = dist.version if dist else None
                distribution: str | None = dist.metadata["Name"] if dist else None
                if self.manager.has_plugin(ep.name) or any(p.name == ep.name for p in self.plugins):
                    continue
                try:
                    plugin = ep.load()
                except Exception as exc:  # any import failure must not take the others down
                    self.plugins.append(PluginInfo(
                        ep.name, version=version, distribution=distribution,
                        error=PluginError(f"failed to import ({type(exc).__name__}: {exc})", path=ep.name,
                                          hint=f"reinstall or uninstall {distribution or ep.value}"),
                    ))
                    continue
                self.add_plugin(plugin, name=ep.name, version=version, distribution=distribution)

    def add_plugin(self, plugin: ModuleType | object, *, name: str, version: str | None = None,
                   distribution: str | None = None) -> PluginInfo:
        """Register one plugin and collect its stages, weights, metrics and presets.

        Failures are recorded, not raised.
        """
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
                                     hint="hook names must match remaster.plugin.hookspecs")
            return info
        # One registry per kind of registration, each fed by its hook remaster_register_<kind>; the kind is also
        # the PluginInfo field that lists the names.
        registries: dict[str, SpecRegistry[Any]] = {"stages": self.stages, "weights": self.weights,
                                                   "metrics": self.metrics, "presets": self.presets,
                                                   "commands": self.commands}
        collected: dict[str, list[Any]] = {kind: [] for kind in registries}
        what = "stages"
        try:
            for what, items in collected.items():
                impl = self._only(name, f"remaster_register_{what}")
                if impl is not None:
                    impl(register=items.append)
            # All or nothing per plugin: every part is validated before any is added.
            batches = {kind: registry.prepare(collected[kind], plugin=name) for kind, registry in registries.items()}
            for kind, registry in registries.items():
                registry.commit(batches[kind])
        except RemasterError as exc:
            info.error = exc if isinstance(exc, PluginError) else PluginError(str(exc), path=name)
        except Exception as exc:
            info.error = PluginError(f"raised {type(exc).__name__} while registering {what}: {exc}", path=name)
        if info.error is not None:
            self.manager.unregister(name=name)
            return info
        for kind, items in collected.items():
            setattr(info, kind, [spec.name for spec in items])
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

        The implementations are asked one by one, in pluggy's call order, so the answer is known to come from
        one plugin: the spec passes the stage registry's checks (:meth:`StageRegistry.check`) and is credited
        to that plugin, whatever its ``plugin`` field said. It is not added to the registry: it belongs to
        the pipeline that named the file.

        Raises:
            InputError: the file does not exist.
            StageError: no installed plugin can run it.
            PluginError: the plugin that answered gave an invalid spec, or raised something other than a
                :class:`RemasterError` (which passes through: an unsafe or damaged file, say).
        """
        if not is_existing_file(path):
            raise InputError("no such model file", path=path,
                             hint="give the path of a .pth or .safetensors file, "
                                  "or a stage name from 'remaster stages'")
        # pluggy calls the last registered first (tryfirst/trylast aside); get_hookimpls() lists them the other way.
        for impl in reversed(self.manager.hook.remaster_stage_from_file.get_hookimpls()):
            if impl.hookwrapper or getattr(impl, "wrapper", False):
                continue  # wrappers wrap a call; they answer nothing themselves
            try:
                spec = impl.function(*(path if arg == "path" else None for arg in impl.argnames))
            except RemasterError:
                raise
            except Exception as exc:  # a broken plugin gets named, not a traceback
                raise PluginError(f"raised {type(exc).__name__} on model file {path}: {exc}", path=impl.plugin_name,
                                  hint="report it to the plugin's authors; 'remaster plugins' lists it") from exc
            if spec is None:
                continue
            try:
                return self.stages.check(spec, impl.plugin_name)
            except PluginError as exc:
                raise PluginError(f"gave an invalid stage for model file {path}: {exc.message}",
                                  path=impl.plugin_name, hint=exc.hint) from None
        raise StageError("no installed plugin can run this model file", path=path,
                         hint="remaster-realesrgan runs ESRGAN-family upscalers; see 'remaster plugins'")

    def vulkan_devices(self) -> tuple[VulkanDevice, ...]:
        """The Vulkan devices of the first plugin whose runtime answers (:func:`hookspecs.remaster_vulkan_devices`),
        software implementations included; the pipeline chooses among them.

        Raises:
            UsageError: no installed plugin runs anything on Vulkan, or its runtime said why Vulkan cannot be
                used here (no loader, the runtime not installed).
            PluginError: the plugin's hook failed in another way, or answered something that is not a list of
                :class:`VulkanDevice`.
        """
        self.ensure_loaded()
        try:
            answer = self.manager.hook.remaster_vulkan_devices()
        except RemasterError:
            raise
        except Exception as exc:  # a broken plugin gets named, not a traceback
            raise PluginError(f"raised {type(exc).__name__} while listing Vulkan devices: {exc}",
                              hint="use {opt:device_cpu}, and report it to the plugin's authors") from exc
        if answer is None:
            raise UsageError("no installed plugin runs stages on Vulkan",
                             hint="pip install 'remaster-realesrgan[vulkan]', or use {opt:device_cpu}")
        devices = tuple(answer)
        if not all(isinstance(device, VulkanDevice) for device in devices):
            raise PluginError("answered the Vulkan device list with something other than VulkanDevice values",
                              hint="report it to the plugin's authors")
        return devices

    def plugin_info(self, plugin_name: str | None) -> PluginInfo:
        """What is known of the plugin ``plugin_name`` (an empty record for a name that is not loaded)."""
        return next((p for p in self.plugins if p.name == plugin_name), PluginInfo(str(plugin_name)))

    def is_builtin(self, plugin_name: str | None) -> bool:
        """Whether ``plugin_name`` is one of remaster's own plugins (or an application's, see :meth:`add_builtin`):
        their failures are bugs, raised, where a third-party plugin's are recorded as warnings."""
        return plugin_name in self._builtin_names

    def callers(self, hook_name: str) -> Iterator[tuple[PluginInfo, Any]]:
        """The loaded plugins that implement ``hook_name``, in load order, each with its own caller."""
        for info in list(self.plugins):
            if info.error is None and self.manager.has_plugin(info.name):
                call = self._only(info.name, hook_name)
                if call is not None:
                    yield info, call

    def warn(self, info: PluginInfo, key: str, message: str) -> None:
        """Record a failure of a hook of ``info``'s plugin (once per plugin and ``key``); the plugin stays in."""
        if (info.name, key) not in self._warned:  # once per plugin and problem, not once per image
            self._warned.add((info.name, key))
            info.warnings.append(PluginError(message, path=info.name))

    @property
    def errors(self) -> list[PluginError]:
        """Errors of the plugins that were left out."""
        return [p.error for p in self.plugins if p.error is not None]

    @property
    def warnings(self) -> list[PluginError]:
        """Failures of hooks of plugins that stayed in (see :attr:`PluginInfo.warnings`)."""
        return [w for p in self.plugins for w in p.warnings]


_process_host: PluginHost | None = None
_process_lock = threading.Lock()


def get_host(*, builtins: Sequence[ModuleType] = ()) -> PluginHost:
    """The process-wide plugin host, loaded on first call.

    Args:
        builtins: Plugin modules the calling application ships as its own (see :meth:`PluginHost.add_builtin`):
            loaded before third-party plugins when this call loads the host, added now to a host already loaded.
    """
    global _process_host
    with _process_lock:
        if _process_host is None:
            _process_host = PluginHost()
        host = _process_host
    for module in builtins:
        host.add_builtin(module)
    return host.ensure_loaded()


def replace_host(host: PluginHost | None) -> PluginHost | None:
    """Make ``host`` the process-wide one (``None``: a fresh one is made on the next :func:`get_host`).

    For tests and embedding applications; returns the host it replaces. Code that has a host passes it down
    instead of relying on this.
    """
    global _process_host
    with _process_lock:
        previous, _process_host = _process_host, host
    return previous
