"""Lazy re-exports for packages (PEP 562): a name is imported from its module on first use.

A package that re-exports heavy modules (numpy, torch) this way can be imported, and its light names read,
without paying for them:

>>> _lazy = LazyExports(globals(), {"psnr": "psnr_ssim"})
>>> def __getattr__(name: str) -> Any:
...     return _lazy.get(name)
>>> def __dir__() -> list[str]:
...     return _lazy.names()

Standard library only, so that any module can use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["LazyExports"]


class LazyExports:
    """The names a package re-exports from its modules, imported when first asked for.

    Args:
        namespace: The package's ``globals()``; a name once imported is stored there, so that later look-ups
            no longer reach the package's ``__getattr__``.
        exports: Each lazily re-exported name → the module of the package that defines it (``"run"`` for
            ``<package>.run``).
    """

    def __init__(self, namespace: dict[str, Any], exports: Mapping[str, str]) -> None:
        self._namespace = namespace
        self._exports = dict(exports)

    def get(self, name: str) -> Any:
        """The value of ``name``, imported from its module; ``AttributeError`` for a name not re-exported."""
        package = self._namespace["__name__"]
        module = self._exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        self._namespace[name] = value
        return value

    def names(self) -> list[str]:
        """What ``dir(package)`` lists: what is already defined and every lazy name."""
        return sorted(set(self._namespace) | set(self._exports))
