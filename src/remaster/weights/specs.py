"""The weights specs: defined in :mod:`remaster.plugin.weights`, the torch-free plugin surface."""

from __future__ import annotations

from ..plugin.weights import PINS_FILE, WeightsRegistry, WeightsSpec

__all__ = ["WeightsSpec", "WeightsRegistry", "PINS_FILE"]
