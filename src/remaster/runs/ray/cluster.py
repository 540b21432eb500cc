"""Ray, imported only here and only when used; the connection to a cluster, or a local one kept on loopback."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from remaster.runs.ray.errors import ClusterCapacityError, ClusterError, EngineMissingError

__all__ = ["import_ray", "connected", "check_capacity", "LOOPBACK", "LOCAL_CLUSTER_ENV"]

LOOPBACK = "127.0.0.1"
#: Measured with ray 2.60 (docs/distributed.md): ``--node-ip-address 127.0.0.1`` alone still leaves the GCS,
#: the raylet and every worker listening on all interfaces; with this variable at 0, all of them bind loopback.
LOCAL_CLUSTER_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

_INSTALL_HINT = "pip install 'remaster[ray]'"


def import_ray(local: bool = False) -> Any:
    """The ``ray`` module; with ``local``, imported so that a cluster started from this process stays on loopback.

    Raises:
        EngineMissingError: Ray is not installed.
        ClusterError: ``local`` was asked, but Ray was already imported in a way that would listen on every interface.
    """
    if local and "ray" not in sys.modules:
        for key, value in LOCAL_CLUSTER_ENV.items():
            os.environ.setdefault(key, value)  # read once, when ray is imported; the cluster's processes inherit it
    try:
        import ray
    except ImportError as exc:
        raise EngineMissingError(f"--engine ray needs Ray, which is not installed ({exc.msg})",
                                 hint=_INSTALL_HINT) from None
    if local:
        from ray._private import ray_constants

        if ray_constants.ENABLE_RAY_CLUSTER:
            raise ClusterError("Ray was imported before remaster could keep a local cluster on loopback; it would "
                               "listen on every network interface",
                               hint="set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 in the environment, or start a cluster "
                                    "yourself (ray start --head --node-ip-address 127.0.0.1) and pass --address")
    return ray


@contextmanager
def connected(address: str | None, *, num_cpus: int | None = None, num_gpus: int | None = None) -> Iterator[Any]:
    """Ray, connected for the duration of the block.

    ``None`` starts a local cluster on loopback (or uses the one this process is already connected to);
    ``"auto"`` joins the cluster of this machine (``ray start``); ``"ray://host:10001"`` connects as a client.
    A connection made here is closed at the end, and a local cluster started here is shut down with it; one that
    was there before is left as it was. Ray's token authentication stays as Ray configures it (on by default).

    Raises:
        ClusterError: The cluster cannot be started or reached.
    """
    ray = import_ray(local=address is None and not _initialized())
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                               "logging_level": logging.WARNING, "configure_logging": True}
    if address is None:
        options.update(num_cpus=num_cpus, num_gpus=num_gpus, _node_ip_address=LOOPBACK)
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError, OSError) as exc:
        where = "start a local Ray cluster" if address is None else f"connect to the Ray cluster at {address}"
        raise ClusterError(f"could not {where}: {exc}",
                           hint="check the address and that `ray status` works on the head node") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _initialized() -> bool:
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def check_capacity(ray: Any, *, cpus_per_worker: float, gpus_per_worker: float) -> dict[str, float]:
    """The cluster's CPUs and GPUs; refuses a worker size that no node can ever hold, instead of waiting for it.

    Raises:
        ClusterCapacityError: One worker needs more CPUs or GPUs than the cluster has in all.
    """
    total = ray.cluster_resources()
    have = {"CPU": float(total.get("CPU", 0)), "GPU": float(total.get("GPU", 0))}
    for kind, need in (("CPU", cpus_per_worker), ("GPU", gpus_per_worker)):
        if need > have[kind]:
            raise ClusterCapacityError(
                f"the cluster has {have['CPU']:g} CPU and {have['GPU']:g} GPU in all, but one worker asks for "
                f"{cpus_per_worker:g} CPU and {gpus_per_worker:g} GPU",
                hint="{opt:worker_size}, or add nodes that have them (ray start)")
    return have
