"""The CLI's own callers of the CLI hooks: options, commands, the upscale pipeline and the per-image notes.

The plugin host only loads plugins and fills registries; what the ``remaster`` program asks of them is asked
here, by the program itself (as llm's CLI calls ``pm.hook.register_commands`` itself). Each caller goes through
the host's per-plugin callers (:meth:`PluginHost.callers`), so one plugin's failure is attributed to it, and
records the failures of third-party plugins as their warnings (:meth:`PluginHost.warn`) where the command can
go on without them.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from remaster.errors import PluginError, RemasterError
from remaster.plugin.commands import Command
from remaster.plugin.host import PluginHost
from remaster.plugin.reference import load_reference
from remaster.plugin.syntax import StageCall, parse_stage

__all__ = ["add_options", "command_arguments", "run_command", "upscale_pipeline", "item_notes"]


def add_options(host: PluginHost, command: str, parser: argparse.ArgumentParser) -> None:
    """Let each plugin add options to the CLI command ``command`` (``remaster_add_options``).

    Each plugin's implementation is tried on a copy of ``parser`` first, so one that raises (or adds an
    option that is already there) adds nothing; it is recorded in the host's warnings and the others go on.
    """
    for info, call in host.callers("remaster_add_options"):
        try:
            call(command=command, parser=copy.deepcopy(parser))
            call(command=command, parser=parser)
        except Exception as exc:  # a broken plugin must not take the command (or its --help) down
            host.warn(info, f"remaster_add_options {command}",
                      f"cannot add its options to '{command}' ({type(exc).__name__}: {exc})")


def command_arguments(host: PluginHost, command: Command, parser: argparse.ArgumentParser, *,
                      common: Callable[[argparse.ArgumentParser], None] | None = None) -> bool:
    """Add the arguments of ``command`` to ``parser`` (its ``arguments`` reference), then ``common``'s.

    Returns:
        Whether they were added. A plugin's command whose ``arguments`` cannot be imported or raise (or add an
        option ``common`` adds too) is recorded in the host's warnings and ``False`` is returned: the CLI leaves
        the command out and the others go on. remaster's own commands raise instead.
    """
    try:
        if command.arguments is not None:
            load_reference(command.arguments)(parser)
        if common is not None:
            common(parser)
        return True
    except Exception as exc:
        if host.is_builtin(command.plugin):
            raise
        host.warn(host.plugin_info(command.plugin), f"command {command.name}",
                  f"command '{command.name}' left out: its arguments fail ({type(exc).__name__}: {exc})")
        return False


def run_command(host: PluginHost, command: Command, args: argparse.Namespace) -> int:
    """Run ``command`` with the parsed ``args`` and ``host``; returns its exit code (``None`` counts as 0).

    Raises:
        RemasterError: what the command raised.
        PluginError: a plugin's command could not be imported, or raised something else (remaster's own
            commands' other exceptions pass through: they are bugs, for the CLI's ``internal error`` line).
    """
    builtin = host.is_builtin(command.plugin)
    hint = f"report it to {host.plugin_info(command.plugin).distribution or command.plugin}"
    try:
        run = load_reference(command.run)
    except Exception as exc:
        if builtin:
            raise
        raise PluginError(f"cannot import command '{command.name}' ({type(exc).__name__}: {exc})",
                          path=command.plugin, hint=hint) from exc
    try:
        code = run(args, host)
    except RemasterError:
        raise
    except Exception as exc:
        if builtin or isinstance(exc, BrokenPipeError):  # a closed stdout is the CLI's to handle, for all
            raise
        raise PluginError(f"command '{command.name}' raised {type(exc).__name__}: {exc}", path=command.plugin,
                          hint=hint) from exc
    return int(code or 0)


def upscale_pipeline(host: PluginHost, options: Mapping[str, Any], upscaler: StageCall,
                     scale: float) -> list[StageCall] | None:
    """The pipeline the first plugin that answers ``remaster_upscale_pipeline`` gives, or ``None``.

    ``options`` are the parsed options of ``remaster upscale`` by name (the plugins' own among them). A plugin
    answers stage calls (stage strings are read here).

    Raises:
        RemasterError: what the plugin raised (e.g. a :class:`UsageError` for options that cannot work).
        PluginError: the plugin raised anything else.
    """
    for info, call in host.callers("remaster_upscale_pipeline"):
        try:
            pipeline = call(options=MappingProxyType(dict(options)), upscaler=upscaler, scale=scale)
        except RemasterError:
            raise
        except Exception as exc:  # running without what the plugin's options asked for would mislead
            raise PluginError(f"raised {type(exc).__name__} while building the upscale pipeline: {exc}",
                              path=info.name, hint=f"report it to {info.distribution or info.name}") from exc
        if pipeline is not None:
            return [parse_stage(item) if isinstance(item, str) else StageCall(*item) for item in pipeline]
    return None


def item_notes(host: PluginHost, extras: dict[str, Any]) -> list[str]:
    """Each plugin's text for an image's log line (``remaster_item_note``), in load order.

    A plugin whose note raises gives none; the failure is recorded in the host's warnings (once).
    """
    notes: list[str] = []
    for info, call in host.callers("remaster_item_note"):
        try:
            answers = call(extras=extras)  # one plugin's caller still answers a list
        except Exception as exc:  # the image was written: a note must not fail it
            host.warn(info, "remaster_item_note", f"cannot describe an image's result ({type(exc).__name__}: {exc})")
            continue
        notes.extend(str(note) for note in answers if note)
    return notes
