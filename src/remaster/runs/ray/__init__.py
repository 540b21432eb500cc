"""Folder and archive runs on a Ray cluster (``remaster ... --engine ray``); docs/distributed.md.

Ray is imported only when a run starts (``pip install 'remaster[ray]'``), so importing this package is cheap.
"""

from __future__ import annotations

from remaster.runs.ray.driver import Plan, execute, make_spec, plan_run
from remaster.runs.ray.engine import RayEngine, run_folder
from remaster.runs.ray.errors import ClusterCapacityError, ClusterError, EngineMissingError
from remaster.runs.ray.spec import RunSpec, WorkItem

__all__ = ["run_folder", "RayEngine", "plan_run", "execute", "make_spec", "Plan", "RunSpec", "WorkItem", "ClusterError",
           "ClusterCapacityError", "EngineMissingError"]
