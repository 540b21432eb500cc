"""``python -m remaster ...``: the same as the ``remaster`` command."""

import sys

from .cli import main

sys.exit(main())
