"""``python -m remaster ...``: the same as the ``remaster`` command."""

from .cli import program

program()
