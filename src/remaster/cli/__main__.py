"""``python -m remaster.cli ...``: the same as the ``remaster`` command (the editors' plug-ins start it so)."""

import sys

from .main import main

sys.exit(main())
