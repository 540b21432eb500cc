"""Folder runs: planning and reporting (:mod:`~remaster.runs.plan`), the local engine
(:mod:`~remaster.runs.local`) and the Ray engine (:mod:`~remaster.runs.ray`, the extra ``remaster[ray]``).

Nothing is imported here, so that planning a run costs neither torch nor Ray.
"""
