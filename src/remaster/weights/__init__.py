"""Model weights: where they live, how they get there, and how they are read safely.

Plugins describe the weights they need with :class:`WeightsSpec` through the
``remaster_register_weights`` hook; the :class:`WeightsRegistry` on the plugin
host holds them. :class:`WeightsManager` keeps the files in a cache folder and
checks their sha256 every time one is used. It never downloads on its own:
:meth:`WeightsManager.ensure` only finds, verifies or produces a file offline,
and says which command fixes a missing one (``remaster weights fetch`` or
``remaster weights import``), so that a run never blocks on the network or
changes behaviour depending on connectivity. A file with no official sha256 is
pinned on first use, but only after the spec's ``check`` found the network it
describes in it, so that junk is never pinned.

Reading is equally conservative: :func:`load_state_dict` reads safetensors, or
pickled checkpoints through torch's ``weights_only`` unpickler only. A pickle
that needs anything more is refused with :class:`UnsafeWeightsError`; there is
no fallback to full unpickling.

The package, one concern a module; every public name is re-exported here:

- ``specs.py``: :class:`WeightsSpec` and :class:`WeightsRegistry`, what plugins declare;
- ``cache.py``: :class:`WeightsManager` (ensure, fetch, import, verify, pins,
  quarantine), :func:`get_manager`, :func:`cache_dir`, :func:`sha256_file`;
- ``download.py``: the resumable HTTP download into a locked ``.part`` file;
- ``serialize.py``: :func:`load_state_dict`, :func:`load_state_dict_layout` (names and shapes only) and
  :func:`save_state_dict`;
- ``networks.py``: :func:`load_network`, :func:`find_and_load_network` (the file checked while
  spandrel loads) and :func:`expect_network` (spandrel).

This package is imported by the plugin host at start-up, so none of its
modules imports torch, safetensors or spandrel at module level.
"""

from __future__ import annotations

from remaster.plugin.weights import WeightsRegistry, WeightsSpec
from remaster.weights.cache import CACHE_ENV, WeightsManager, WeightsStatus, cache_dir, get_manager, sha256_file
from remaster.weights.download import ProgressCallback
from remaster.weights.networks import expect_network, find_and_load_network, load_network
from remaster.weights.serialize import load_state_dict, load_state_dict_layout, save_state_dict

__all__ = [
    "WeightsSpec",
    "WeightsRegistry",
    "WeightsStatus",
    "WeightsManager",
    "ProgressCallback",
    "CACHE_ENV",
    "cache_dir",
    "get_manager",
    "sha256_file",
    "load_state_dict",
    "load_state_dict_layout",
    "load_network",
    "find_and_load_network",
    "expect_network",
    "save_state_dict",
]
