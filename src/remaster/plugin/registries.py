"""Registries of what plugins register: stages, weights and metrics.

All share :class:`SpecRegistry`: names are checked, each spec is attributed to
its plugin, and one plugin's specs are added all together or not at all
(``prepare`` validates, ``commit`` adds), so a broken plugin leaves no half of
itself behind.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from remaster.errors import PluginError, RemasterError, UnknownStageError
from remaster.plugin.reference import is_reference
from remaster.plugin.specs import StageKind, StageSpec

__all__ = ["SpecRegistry", "StageRegistry", "NAME_PATTERN"]

#: What names of stages, weights and metrics look like.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


class _Spec(Protocol):
    """What every registered spec has: its name and the plugin that registered it."""

    @property
    def name(self) -> str: ...

    @property
    def plugin(self) -> str | None: ...


S = TypeVar("S", bound=_Spec)


class SpecRegistry(Generic[S]):
    """Specs by name, each attributed to the plugin that registered it.

    Subclasses set ``what`` (for messages), ``spec_type``, ``unknown_error``
    and ``listing_hint``, and add their own checks in :meth:`_check`.
    """

    what: ClassVar[str] = "spec"
    spec_type: ClassVar[type] = object
    unknown_error: ClassVar[type[RemasterError]] = RemasterError
    listing_hint: ClassVar[str] = ""

    def __init__(self) -> None:
        self._specs: dict[str, S] = {}

    def add_all(self, specs: list[S], plugin: str) -> None:
        """Add the specs one plugin registered, all or none.

        Raises:
            PluginError: a spec is invalid or its name is taken; nothing from
                this plugin is added then.
        """
        self.commit(self.prepare(specs, plugin))

    def prepare(self, specs: list[S], plugin: str) -> dict[str, S]:
        """Validate one plugin's specs without adding them (the host commits only if all its parts are valid).

        Raises:
            PluginError: as :meth:`add_all`.
        """
        batch: dict[str, S] = {}
        for spec in specs:
            checked = self.check(spec, plugin, verb="registered")
            name = checked.name
            if name in self._specs or name in batch:
                owner = self._specs[name].plugin if name in self._specs else plugin
                raise PluginError(f"{self.what} {name!r} is already registered by plugin {owner!r}", path=plugin,
                                  hint=f"rename the {self.what} or uninstall one of the plugins")
            batch[name] = checked
        self._check_batch(batch, plugin)
        return batch

    def check(self, spec: Any, plugin: str, *, verb: str = "gave") -> S:
        """Validate one spec as :meth:`prepare` does, without adding it or comparing names with the registered ones.

        For specs that live outside the registry (a stage built from a model file belongs to one pipeline).

        Args:
            verb: What the plugin did with ``spec``, for the message when it is no spec at all.

        Returns:
            ``spec`` credited to ``plugin`` (its own ``plugin`` field is overwritten).

        Raises:
            PluginError: the spec is invalid.
        """
        if not isinstance(spec, self.spec_type):
            raise PluginError(f"{verb} {type(spec).__name__!s} instead of a {self.spec_type.__name__}", path=plugin)
        name = getattr(spec, "name", None)
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise PluginError(f"{self.what} name {name!r} is invalid", path=plugin,
                              hint="use lower-case letters, digits, '.', '-' and '_'")
        self._check(spec, plugin)
        return self._attributed(spec, plugin)

    def commit(self, batch: dict[str, S]) -> None:
        """Add specs that :meth:`prepare` validated."""
        self._specs.update(batch)

    def _check(self, spec: Any, plugin: str) -> None:
        """Raise :class:`PluginError` if ``spec`` is not usable."""

    def _check_batch(self, batch: dict[str, S], plugin: str) -> None:
        """Raise :class:`PluginError` if the batch clashes with what is registered already."""

    def _attributed(self, spec: Any, plugin: str) -> S:
        return replace(spec, plugin=plugin)

    def _sort_key(self, spec: Any) -> Any:
        return spec.name

    def get(self, name: str) -> S:
        """The spec named ``name``.

        Raises:
            RemasterError: of the subclass's ``unknown_error`` type, with the closest names as a hint.
        """
        try:
            return self._specs[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), list(self._specs), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else self.listing_hint
            raise self.unknown_error(f"no {self.what} named {name!r}", hint=hint) from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[S]:
        return iter(sorted(self._specs.values(), key=self._sort_key))

    def __len__(self) -> int:
        return len(self._specs)


class StageRegistry(SpecRegistry[StageSpec]):
    """Stage specs by name."""

    what = "stage"
    spec_type = StageSpec
    unknown_error = UnknownStageError
    listing_hint = "run 'remaster stages' to list them"

    def _check(self, spec: StageSpec, plugin: str) -> None:
        if not isinstance(spec.kind, StageKind):
            raise PluginError(f"stage {spec.name!r} has kind {spec.kind!r}, not a StageKind", path=plugin)
        if not is_reference(spec.factory):
            raise PluginError(
                f"stage {spec.name!r} has factory {spec.factory!r}",
                path=plugin,
                hint="give 'package.module:Class', a remaster.plugin.Ref, or a callable",
            )
        names = [p.name for p in spec.params]
        if len(names) != len(set(names)):
            raise PluginError(f"stage {spec.name!r} declares a parameter twice", path=plugin)
        scale_param = spec.info.scale_param
        if scale_param is not None and scale_param not in names:
            raise PluginError(f"stage {spec.name!r} takes its scale from unknown parameter {scale_param!r}",
                              path=plugin)

    def _sort_key(self, spec: StageSpec) -> Any:
        return (spec.kind.value, spec.name)
