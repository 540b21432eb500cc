"""``python -m remaster ...``: the same as the ``remaster`` command."""

from remaster.cli import program

program()
