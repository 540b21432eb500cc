"""``python -m remaster.cli ...``: the same as the ``remaster`` command (the editors' plug-ins start it so)."""

from remaster.cli.main import program

program()
