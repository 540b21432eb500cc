"""The errors of distributed runs: Ray missing, a cluster that cannot be reached or has no room for a worker."""

from __future__ import annotations

from remaster.errors import RemasterError, UsageError

__all__ = ["EngineMissingError", "ClusterError", "ClusterCapacityError"]


class EngineMissingError(UsageError):
    """``--engine ray`` was asked for, but Ray (or the object-storage layer) is not installed."""


class ClusterError(RemasterError):
    """The Ray cluster could not be started or reached, or lost every worker."""


class ClusterCapacityError(ClusterError):
    """The cluster has no room for one worker of the size asked for, so the run would wait forever."""
