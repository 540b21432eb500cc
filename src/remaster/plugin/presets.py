"""Editor presets: the named pipelines the GIMP and Krita dialogs offer, and the registry the host fills.

Plain data, part of the torch-free plugin surface (:mod:`remaster.plugin`). A
plugin registers them through ``remaster_register_presets``; ``remaster serve``
lists those whose stages are installed at ``GET /v1/presets``, and the editors
build their choice lists from that, so a new model's plugin can put it in the
dialogs without a new release of the editor plug-ins.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from remaster.errors import PluginError, UnknownNameError
from remaster.plugin.registries import NAME_PATTERN, SpecRegistry

__all__ = ["Preset", "PresetRegistry", "UnknownPresetError"]


class UnknownPresetError(UnknownNameError):
    """No preset is registered under the requested name."""


@dataclass(frozen=True)
class Preset:
    """One choice in the editors' dialogs: a label and the pipeline it runs.

    Attributes:
        name: Unique id: lower case, digits, ``.``, ``-``, ``_`` (``upscale-x4``). Scripts name presets by it
            (the GIMP procedure's ``preset`` argument), so keep it stable.
        label: What the dialog shows (``upscale x4``).
        pipeline: The pipeline string it runs (``realesrgan-x4plus(scale=2)``).
        description: One line for tooltips and listings.
        faces_of: The id of the preset this one is the face-restoring variant of: what runs when the dialog's
            "Restore faces" box is ticked with that preset chosen. ``None`` for a preset of its own.
        requires: Stages the pipeline needs that it does not name as stages (a stage named in a parameter,
            such as gfpgan's ``background``); the stages it names are found from the pipeline itself.
        weights: Weights the pipeline cannot run without (``gfpgan-1.4``): ``GET /v1/presets`` lists the preset
            only while each is in the cache or made offline, so a dialog never offers what would fail.
        order: Where it sits in the dialogs' lists (lower first; ties by id).
        plugin: The plugin that registered it; set by the registry.
    """

    name: str
    label: str
    pipeline: str
    description: str = ""
    faces_of: str | None = None
    requires: tuple[str, ...] = field(default=())
    weights: tuple[str, ...] = field(default=())
    order: int = 100
    plugin: str | None = None

    def as_json(self) -> dict[str, object]:
        """The preset as ``GET /v1/presets`` lists it (``id`` is :attr:`name`)."""
        return {"id": self.name, "label": self.label, "pipeline": self.pipeline, "description": self.description,
                "faces_of": self.faces_of, "order": self.order, "plugin": self.plugin}


class PresetRegistry(SpecRegistry[Preset]):
    """Presets by id, in dialog order."""

    what = "preset"
    spec_type = Preset
    unknown_error = UnknownPresetError
    listing_hint = "GET /v1/presets lists them"

    def _check(self, spec: Preset, plugin: str) -> None:
        for text in ("label", "pipeline"):
            value = getattr(spec, text)
            if not isinstance(value, str) or not value.strip():
                raise PluginError(f"preset {spec.name!r} has {text}={value!r}", path=plugin,
                                  hint=f"give a non-empty string as the {text}")
        if not isinstance(spec.description, str):
            raise PluginError(f"preset {spec.name!r} has description={spec.description!r}", path=plugin,
                              hint="give a string")
        if spec.faces_of is not None and (not isinstance(spec.faces_of, str) or not NAME_PATTERN.match(spec.faces_of)):
            raise PluginError(f"preset {spec.name!r} has faces_of={spec.faces_of!r}", path=plugin,
                              hint="give the id of another preset, or None")
        if spec.faces_of == spec.name:
            raise PluginError(f"preset {spec.name!r} is the face variant of itself", path=plugin,
                              hint="faces_of names the preset without face restoration")
        for field_name, what in (("requires", "stage"), ("weights", "weights")):
            value = getattr(spec, field_name)
            if isinstance(value, str) or not all(isinstance(s, str) and s for s in value):
                raise PluginError(f"preset {spec.name!r} has {field_name}={value!r}", path=plugin,
                                  hint=f"give a tuple of {what} names")
        if not isinstance(spec.order, int) or isinstance(spec.order, bool):
            raise PluginError(f"preset {spec.name!r} has order={spec.order!r}", path=plugin, hint="give an integer")

    def _attributed(self, spec: Preset, plugin: str) -> Preset:
        return replace(spec, plugin=plugin, requires=tuple(spec.requires), weights=tuple(spec.weights))

    def _sort_key(self, spec: Preset) -> tuple[int, str]:
        return (spec.order, spec.name)
