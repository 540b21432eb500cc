"""The default plugin host, as the layers below the host see it: a :class:`Host` protocol and a provider slot.

Metrics and the weights cache sit *above* the plugin surface but must not
import the plugin host (:mod:`remaster.plugins`): they are plain functions
over registries, and code that has a host (a pipeline, an evaluation, a
fine-tuning run) passes it down. Only the by-name conveniences for library
users (``remaster.metrics.compute("psnr", ...)``, ``remaster.weights.get_manager()``)
need "the process-wide host" when none is given, and they ask
:func:`default_host` for it.

The package :mod:`remaster` itself, which Python always imports before any of
its modules, installs the provider (a function that imports the host and calls
``remaster.plugins.get_host``): the composition root wires the default, so the
dependency is an ordinary import of the top-level package and the metrics and
weights packages depend only on this protocol. Tests or embedders may install
another provider with :func:`set_default_host_provider`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable, Protocol

from ..errors import RemasterError

if TYPE_CHECKING:
    from .metrics import MetricRegistry
    from .weights import WeightsRegistry

__all__ = ["Host", "HostProvider", "default_host", "resolve_host", "set_default_host_provider"]


class Host(Protocol):
    """What metrics and the weights cache need of a plugin host (``remaster.plugins.PluginHost`` is one)."""

    metrics: MetricRegistry
    weights: WeightsRegistry

    def ensure_loaded(self) -> Host:
        """Load the plugins if not done yet; returns the host itself."""
        ...


#: A function giving the process-wide host, loaded.
HostProvider = Callable[[], Host]

_provider: HostProvider | None = None
_lock = threading.Lock()


def set_default_host_provider(provider: HostProvider | None) -> HostProvider | None:
    """Install the function :func:`default_host` calls; returns the one it replaces (``None``: none installed)."""
    global _provider
    with _lock:
        previous, _provider = _provider, provider
    return previous


def default_host() -> Host:
    """The process-wide plugin host, loaded, from the installed provider.

    Raises:
        RemasterError: no provider is installed (``import remaster`` installs one, so this means it was removed).
    """
    with _lock:
        provider = _provider
    if provider is None:
        raise RemasterError("no default plugin host is installed",
                            hint="pass a host (or registry) explicitly, or call "
                                 "remaster.plugin.host.set_default_host_provider(remaster.plugins.get_host)")
    return provider()


def resolve_host(host: Host | None) -> Host:
    """``host`` loaded, or the process-wide host when ``host`` is ``None``."""
    return default_host() if host is None else host.ensure_loaded()
