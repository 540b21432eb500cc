"""Lazy references: ``"package.module:attribute"``, optionally with bound keyword arguments.

Stage factories, metric functions and weights producers and checks are given this
way so that registering them imports nothing; the module is imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Ref", "Reference", "import_reference", "is_reference", "load_reference"]


def import_reference(reference: str) -> Any:
    """The object a ``"package.module:attribute"`` string names, importing the module now.

    Callers wrap failures in their own error (the import of a plugin's module can fail in any way).
    """
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@dataclass(frozen=True)
class Ref:
    """``"package.module:attribute"`` plus keyword arguments bound to it, imported on first use.

    ``Ref("my_plugin.stage:Upscaler", weights=("x4",))`` as a stage factory builds
    ``Upscaler(weights=("x4",), **params)``, without a wrapper function and without
    importing ``my_plugin.stage`` at registration.

    Attributes:
        target: ``"package.module:attribute"``.
        kwargs: Keyword arguments bound to the call (the call's own arguments win).
    """

    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __init__(self, target: str, /, **kwargs: Any):
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "kwargs", dict(kwargs))

    def load(self) -> Callable[..., Any]:
        """The referenced object, with the bound arguments applied if there are any."""
        obj = import_reference(self.target)
        if not self.kwargs:
            return obj
        bound = self.kwargs

        def call(*args: Any, **kwargs: Any) -> Any:
            return obj(*args, **{**bound, **kwargs})

        call.__name__ = getattr(obj, "__name__", "call")
        call.__doc__ = getattr(obj, "__doc__", None)
        return call

    def __hash__(self) -> int:
        return hash((self.target, tuple(sorted(self.kwargs))))

    def __str__(self) -> str:
        return self.target if not self.kwargs else f"{self.target}({', '.join(f'{k}=...' for k in self.kwargs)})"


#: What a factory, metric function, producer or check may be given as.
Reference = str | Ref | Callable[..., Any]


def is_reference(value: Any) -> bool:
    """A callable, a :class:`Ref`, or a ``"package.module:attribute"`` string."""
    if isinstance(value, Ref):
        return isinstance(value.target, str) and ":" in value.target
    return callable(value) or (isinstance(value, str) and ":" in value)


def load_reference(value: Reference) -> Callable[..., Any]:
    """The callable behind any :data:`Reference` (imports the module of a string or :class:`Ref` now)."""
    if isinstance(value, Ref):
        return value.load()
    if isinstance(value, str):
        return import_reference(value)
    return value
