"""Commands of the ``remaster`` program: the spec a plugin registers, and the registry the host fills.

Part of the torch-free plugin surface. remaster's own commands (``upscale``,
``run``, ``stages``, ...) are registered through the same hook
(``remaster_register_commands``) by the CLI's built-in plugin, before any
third-party plugin loads, so a plugin can add a command but never replace one
of remaster's: a name already taken leaves the plugin out, as with stages.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from remaster.errors import PluginError, UnknownNameError
from remaster.plugin.reference import Reference, is_reference
from remaster.plugin.registries import SpecRegistry

__all__ = ["Command", "CommandRegistry", "UnknownCommandError"]


class UnknownCommandError(UnknownNameError):
    """No command is registered under the requested name."""


@dataclass(frozen=True)
class Command:
    """One ``remaster`` command: its name, its one-line help, how it adds its arguments and what it runs.

    Both references are imported only when needed: ``arguments`` while the
    parser is built (``remaster --help`` too, so its module must be cheap to
    import), ``run`` only when the command is the one given.

    Attributes:
        name: What the user types (``remaster NAME ...``): lower case, digits, ``.``, ``-``, ``_``.
        help: One line for ``remaster --help``.
        run: ``run(args, host) -> int``: does the work and returns the exit code (0 success, 1 some items
            failed, 2 usage). ``args`` is the parsed :class:`argparse.Namespace`; ``host`` the plugin host the
            command should pass down (``Remasterer(..., host=host)``). Raise a
            :class:`remaster.errors.RemasterError` for a failure the user can act on: the CLI prints it as one
            line and exits with its code.
        arguments: ``arguments(parser)`` adds the command's arguments to its :class:`argparse.ArgumentParser`
            (``None``: it takes none). ``-q``, ``--json`` and ``--debug`` are added to every command by the CLI.
        description: Longer text for ``remaster NAME --help`` (default: :attr:`help`).
        plugin: The plugin that registered it; set by the registry.
    """

    name: str
    help: str
    run: Reference
    arguments: Reference | None = None
    description: str | None = None
    plugin: str | None = None


class CommandRegistry(SpecRegistry[Command]):
    """Commands by name, in the order they were registered (remaster's own first)."""

    what = "command"
    spec_type = Command
    unknown_error = UnknownCommandError
    listing_hint = "run 'remaster --help' to list them"

    def _check(self, spec: Command, plugin: str) -> None:
        if not isinstance(spec.help, str) or not spec.help.strip() or "\n" in spec.help:
            raise PluginError(f"command {spec.name!r} has help={spec.help!r}", path=plugin,
                              hint="give one non-empty line")
        if spec.description is not None and not isinstance(spec.description, str):
            raise PluginError(f"command {spec.name!r} has description={spec.description!r}", path=plugin,
                              hint="give a string, or None")
        for field_name in ("run", "arguments"):
            value = getattr(spec, field_name)
            if (value is not None or field_name == "run") and not is_reference(value):
                raise PluginError(f"command {spec.name!r} has {field_name}={value!r}", path=plugin,
                                  hint="give 'package.module:function', a remaster.plugin.Ref, or a callable")

    def _attributed(self, spec: Command, plugin: str) -> Command:
        return replace(spec, plugin=plugin)

    def _sort_key(self, spec: Command) -> int:
        return 0  # a stable sort of equal keys: registration order, which is load order
