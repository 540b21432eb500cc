"""Plugin loading: built-ins and entry points, once, lazily.

Built-in stages and metrics are plugins like any other
(``remaster.stages.builtin``, ``remaster.metrics.builtin``), registered through
the same hooks as third-party ones; an application adds its own built-ins the
same way (the ``remaster`` command registers its commands as
``remaster.cli.commands``, see :func:`get_host`). Third-party plugins are
modules published under the ``remaster`` entry-point group. A plugin that
fails to import or registers something invalid is recorded with its error and
left out; the others keep working.
"""

from __future__ import annotations

import copy
import importlib
import threading
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import pluggy

from .errors import InputError, PluginError, RemasterError, StageError
from .plugin import hookspecs
from .plugin.commands import Command, CommandRegistry
from .plugin.metrics import MetricRegistry
from .plugin.presets import PresetRegistry
from .plugin.reference import load_reference
from .plugin.registries import SpecRegistry, StageRegistry
from .plugin.specs import StageSpec
from .plugin.weights import WeightsRegistry

if TYPE_CHECKING:  # the CLI hooks' types; argparse itself is never needed here
    import argparse

__all__ = ["PluginInfo", "PluginHost", "get_host"]

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
        builtins: Names of further modules an application ships as its own plugins (credited to the
            ``remaster`` distribution), e.g. ``("remaster.cli.commands",)``.
    """

    def __init__(self, *, load_entry_points: bool = True, extra_plugins: tuple[Any, ...] = (),
                 builtins: Sequence[str] = ()):
        self._load_entry_points = load_entry_points
        self._extra = extra_plugins
        self._builtins = [*BUILTIN_PLUGINS, *(name for name in builtins if name not in BUILTIN_PLUGINS)]
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

    def add_builtin(self, module_name: str) -> PluginInfo | None:
        """Make the module ``module_name`` one of this host's built-in plugins.

        Before the host is loaded it joins the built-ins, ahead of third-party plugins; on a host already loaded
        (one a test or an embedding application made) it is added now, unless it is there already.

        Returns:
            What it registered when added now; ``None`` when it waits for the load or was there already.
        """
        with self._lock:
            if not self._loaded:
                if module_name not in self._builtins:
                    self._builtins.append(module_name)
                return None
        if any(p.name == module_name for p in self.plugins):
            return None
        self._builtins.append(module_name)  # its commands are remaster's own: their failures are bugs, not warnings
        return self._add_builtin(module_name)

    def _add_builtin(self, module_name: str) -> PluginInfo:
        from importlib.metadata import version as dist_version

        return self.add_plugin(importlib.import_module(module_name), name=module_name,
                               version=dist_version("remaster"), distribution="remaster")

    def _load(self) -> None:
        for module_name in self._builtins:
            self._add_builtin(module_name)
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
        if not path.is_file():
            raise InputError("no such model file", path=path,
                             hint="give the path of a .pth or .safetensors file, or a stage name from 'remaster stages'")
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

    def add_options(self, command: str, parser: argparse.ArgumentParser) -> None:
        """Let each plugin add options to the CLI command ``command`` (``remaster_add_options``).

        Each plugin's implementation is tried on a copy of ``parser`` first, so one that raises (or adds an
        option that is already there) adds nothing; it is recorded in :attr:`warnings` and the others go on.
        """
        for info, call in self._callers("remaster_add_options"):
            try:
                call(command=command, parser=copy.deepcopy(parser))
                call(command=command, parser=parser)
            except Exception as exc:  # a broken plugin must not take the command (or its --help) down
                self._warn(info, f"remaster_add_options {command}",
                           f"cannot add its options to '{command}' ({type(exc).__name__}: {exc})")

    def command_arguments(self, command: Command, parser: argparse.ArgumentParser, *,
                          common: Callable[[argparse.ArgumentParser], None] | None = None) -> bool:
        """Add the arguments of ``command`` to ``parser`` (its ``arguments`` reference), then ``common``'s.

        Returns:
            Whether they were added. A plugin's command whose ``arguments`` cannot be imported or raise (or
            add an option ``common`` adds too) is recorded in :attr:`warnings` and ``False`` is returned: the
            CLI leaves the command out and the others go on. remaster's own commands raise instead.
        """
        try:
            if command.arguments is not None:
                load_reference(command.arguments)(parser)
            if common is not None:
                common(parser)
            return True
        except Exception as exc:
            if command.plugin in self._builtins:
                raise
            info = self._info(command.plugin)
            self._warn(info, f"command {command.name}",
                       f"command '{command.name}' left out: its arguments fail ({type(exc).__name__}: {exc})")
            return False

    def run_command(self, command: Command, args: argparse.Namespace) -> int:
        """Run ``command`` with the parsed ``args`` and this host; returns its exit code (``None`` counts as 0).

        Raises:
            RemasterError: what the command raised.
            PluginError: a plugin's command could not be imported, or raised something else (remaster's own
                commands' other exceptions pass through: they are bugs, for the CLI's ``internal error`` line).
        """
        builtin = command.plugin in self._builtins
        hint = f"report it to {self._info(command.plugin).distribution or command.plugin}"
        try:
            run = load_reference(command.run)
        except Exception as exc:
            if builtin:
                raise
            raise PluginError(f"cannot import command '{command.name}' ({type(exc).__name__}: {exc})",
                              path=command.plugin, hint=hint) from exc
        try:
            code = run(args, self)
        except RemasterError:
            raise
        except Exception as exc:
            if builtin or isinstance(exc, BrokenPipeError):  # a closed stdout is the CLI's to handle, for all
                raise
            raise PluginError(f"command '{command.name}' raised {type(exc).__name__}: {exc}", path=command.plugin,
                              hint=hint) from exc
        return int(code or 0)

    def _info(self, plugin_name: str | None) -> PluginInfo:
        return next((p for p in self.plugins if p.name == plugin_name), PluginInfo(str(plugin_name)))

    def upscale_pipeline(self, args: argparse.Namespace, upscaler: str, scale: float) -> list[str] | None:
        """The pipeline the first plugin that answers ``remaster_upscale_pipeline`` gives, or ``None``.

        Raises:
            RemasterError: what the plugin raised (e.g. a :class:`UsageError` for options that cannot work).
            PluginError: the plugin raised anything else.
        """
        for info, call in self._callers("remaster_upscale_pipeline"):
            try:
                pipeline = call(args=args, upscaler=upscaler, scale=scale)
            except RemasterError:
                raise
            except Exception as exc:  # running without what the plugin's options asked for would mislead
                raise PluginError(f"raised {type(exc).__name__} while building the upscale pipeline: {exc}",
                                  path=info.name, hint=f"report it to {info.distribution or info.name}") from exc
            if pipeline is not None:
                return list(pipeline)
        return None

    def item_notes(self, extras: dict[str, Any]) -> list[str]:
        """Each plugin's text for an image's log line (``remaster_item_note``), in load order.

        A plugin whose note raises gives none; the failure is recorded in :attr:`warnings` (once).
        """
        notes = []
        for info, call in self._callers("remaster_item_note"):
            try:
                answers = call(extras=extras)  # one plugin's caller still answers a list
            except Exception as exc:  # the image was written: a note must not fail it
                self._warn(info, "remaster_item_note",
                           f"cannot describe an image's result ({type(exc).__name__}: {exc})")
                continue
            notes.extend(str(note) for note in answers if note)
        return notes

    def _callers(self, hook_name: str) -> Iterator[tuple[PluginInfo, Any]]:
        """The loaded plugins that implement ``hook_name``, in load order, each with its own caller."""
        for info in list(self.plugins):
            if info.error is None and self.manager.has_plugin(info.name):
                call = self._only(info.name, hook_name)
                if call is not None:
                    yield info, call

    def _warn(self, info: PluginInfo, key: str, message: str) -> None:
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


_default_host: PluginHost | None = None
_default_lock = threading.Lock()


def get_host(*, builtins: Sequence[str] = ()) -> PluginHost:
    """The process-wide plugin host, loaded on first call.

    Args:
        builtins: Modules the calling application ships as its own plugins (see :meth:`PluginHost.add_builtin`):
            loaded before third-party plugins when this call loads the host, added now to a host already loaded.
    """
    global _default_host
    with _default_lock:
        if _default_host is None:
            _default_host = PluginHost()
        host = _default_host
    for module_name in builtins:
        host.add_builtin(module_name)
    return host.ensure_loaded()
