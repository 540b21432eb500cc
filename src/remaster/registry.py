"""The registry of stage specs, filled by plugins."""

from __future__ import annotations

import difflib
import re
from dataclasses import replace
from typing import Iterator

from .errors import PluginError, UnknownStageError
from .stage import StageKind, StageSpec

__all__ = ["StageRegistry"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


class StageRegistry:
    """Stage specs by name, each attributed to the plugin that registered it."""

    def __init__(self) -> None:
        self._specs: dict[str, StageSpec] = {}

    def add_all(self, specs: list[StageSpec], plugin: str) -> None:
        """Add the specs one plugin registered, all or none.

        Raises:
            PluginError: when a spec is invalid or its name is taken; nothing
                from this plugin is added then.
        """
        batch: dict[str, StageSpec] = {}
        for spec in specs:
            self._check(spec, plugin)
            if spec.name in self._specs or spec.name in batch:
                owner = self._specs[spec.name].plugin if spec.name in self._specs else plugin
                raise PluginError(
                    f"stage {spec.name!r} is already registered by plugin {owner!r}",
                    path=plugin,
                    hint="rename the stage or uninstall one of the plugins",
                )
            batch[spec.name] = replace(spec, plugin=plugin)
        self._specs.update(batch)

    @staticmethod
    def _check(spec: object, plugin: str) -> None:
        if not isinstance(spec, StageSpec):
            raise PluginError(f"registered {type(spec).__name__!s} instead of a StageSpec", path=plugin)
        if not _NAME.match(spec.name):
            raise PluginError(
                f"stage name {spec.name!r} is invalid",
                path=plugin,
                hint="use lower-case letters, digits, '.', '-' and '_'",
            )
        if not isinstance(spec.kind, StageKind):
            raise PluginError(f"stage {spec.name!r} has kind {spec.kind!r}, not a StageKind", path=plugin)
        if not (callable(spec.factory) or (isinstance(spec.factory, str) and ":" in spec.factory)):
            raise PluginError(
                f"stage {spec.name!r} has factory {spec.factory!r}",
                path=plugin,
                hint="give 'package.module:Class' or a callable",
            )
        names = [p.name for p in spec.params]
        if len(names) != len(set(names)):
            raise PluginError(f"stage {spec.name!r} declares a parameter twice", path=plugin)
        scale_param = spec.info.scale_param
        if scale_param is not None and scale_param not in names:
            raise PluginError(f"stage {spec.name!r} takes its scale from unknown parameter {scale_param!r}", path=plugin)

    def get(self, name: str) -> StageSpec:
        """The spec named ``name``.

        Raises:
            UnknownStageError: with the closest names as a hint.
        """
        try:
            return self._specs[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._specs), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "run 'remaster stages' to list them"
            raise UnknownStageError(f"no stage named {name!r}", hint=hint) from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[StageSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: (s.kind.value, s.name)))

    def __len__(self) -> int:
        return len(self._specs)
