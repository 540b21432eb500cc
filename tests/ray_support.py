"""Helpers of tests/distributed: tiny image folders, the fault plugin for Ray's workers, listening sockets.

Ray's worker processes do not see the test's ``sys.path``; they inherit the environment the cluster was started
with, so :func:`worker_environment` is set before any cluster starts.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reliability_support import FAULT_PLUGIN, install_fault_plugin

HAVE_RAY = importlib.util.find_spec("ray") is not None
NEEDS_RAY = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'remaster[ray]'; "
                                                    "make test installs it)")


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1, or 127.x written as an IPv4-mapped IPv6 address (``::ffff:127.0.0.1``)."""
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def tiny_folder(folder: Path, count: int, *, size: int = 16, broken: bool = False, seed: int = 0) -> Path:
    """``count`` random ``size``×``size`` PNGs (and a broken one) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"img{index:02d}.png")
    if broken:
        (folder / "broken.png").write_bytes(b"this is not a PNG")
    return folder


@contextmanager
def worker_environment(site: Path, **extra: str) -> Iterator[dict[str, str]]:
    """The fault plugin on ``PYTHONPATH`` (and ``extra``) in ``os.environ`` while a cluster is started and used."""
    install_fault_plugin(site)
    paths = [str(site), str(FAULT_PLUGIN), *filter(None, [os.environ.get("PYTHONPATH")])]
    wanted = {"PYTHONPATH": os.pathsep.join(paths), **extra}
    previous = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield wanted
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def listening_sockets(pids: set[int]) -> list[tuple[int, str, int]]:
    """``(pid, address, port)`` of every TCP socket these processes listen on."""
    import psutil

    found = []
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found.extend((pid, c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN)
    return found


def process_tree(pid: int) -> set[int]:
    """``pid`` and all its descendants."""
    import psutil

    try:
        return {pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
