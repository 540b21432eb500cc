"""The spec registries: defined in :mod:`remaster.plugin.registries`, the torch-free plugin surface."""

from __future__ import annotations

from .plugin.reference import import_reference
from .plugin.registries import NAME_PATTERN, SpecRegistry, StageRegistry

__all__ = ["SpecRegistry", "StageRegistry", "NAME_PATTERN", "import_reference"]
