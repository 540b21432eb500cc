"""The one import surface for plugin authors: markers, spec types, lazy references, registries.

It imports none of torch, numpy, PIL or OpenCV, so that a plugin's registration
module costs nothing at start-up (``remaster stages`` and ``remaster --help`` stay
fast)::

    from remaster.plugin import Param, Ref, StageInfo, StageKind, StageSpec, hookimpl

    @hookimpl
    def remaster_register_stages(register):
        register(StageSpec(name="sepia", kind=StageKind.FILTER, factory="my_plugin.stage:Sepia",
                           params=(Param("strength", float, 1.0, min=0.0, max=1.0),),
                           info=StageInfo(in_channels=(3,), dtypes=("fp32",))))

The run-time side (``remaster.Stage``, ``remaster.RunContext``) needs torch and
is imported by the module the factory names, on first use.
"""

from __future__ import annotations

from remaster.plugin.commands import Command, CommandRegistry
from remaster.plugin.host import PluginHost, PluginInfo, get_host
from remaster.plugin.markers import NAME, PLUGIN_API_VERSION, PROJECT_NAME, hookimpl, hookspec
from remaster.plugin.metrics import MetricRegistry, MetricSpec
from remaster.plugin.presets import Preset, PresetRegistry
from remaster.plugin.reference import Ref, Reference, import_reference, is_reference, load_reference
from remaster.plugin.registries import NAME_PATTERN, SpecRegistry, StageRegistry
from remaster.plugin.sequence import FrameSequence
from remaster.plugin.specs import (
    PRECISION_NAMES,
    AlphaHandling,
    Param,
    Precision,
    StageInfo,
    StageKind,
    StageSpec,
    Tiling,
    precision_name,
)
from remaster.plugin.syntax import (
    MODEL_FILE_SUFFIXES,
    StageCall,
    format_stage,
    is_existing_file,
    names_model_file,
    parse_pipeline,
    parse_stage,
    split_top_level,
)
from remaster.plugin.vulkan import VulkanDevice
from remaster.plugin.weights import WeightsRegistry, WeightsSpec

__all__ = [
    "NAME",
    "PROJECT_NAME",
    "PLUGIN_API_VERSION",
    "hookimpl",
    "hookspec",
    "StageSpec",
    "StageInfo",
    "StageKind",
    "Tiling",
    "AlphaHandling",
    "Param",
    "PRECISION_NAMES",
    "Precision",
    "precision_name",
    "WeightsSpec",
    "WeightsRegistry",
    "MetricSpec",
    "MetricRegistry",
    "Preset",
    "FrameSequence",
    "Command",
    "CommandRegistry",
    "PresetRegistry",
    "Ref",
    "Reference",
    "import_reference",
    "is_reference",
    "load_reference",
    "SpecRegistry",
    "StageRegistry",
    "NAME_PATTERN",
    "StageCall",
    "parse_stage",
    "format_stage",
    "parse_pipeline",
    "split_top_level",
    "MODEL_FILE_SUFFIXES",
    "names_model_file",
    "is_existing_file",
    "PluginHost",
    "PluginInfo",
    "get_host",
    "VulkanDevice",
]
