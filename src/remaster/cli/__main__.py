"""``python -m remaster.cli ...``: the same as the ``remaster`` command (the editors' plug-ins start it so)."""

from .main import program

program()
