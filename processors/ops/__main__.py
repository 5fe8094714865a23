"""``python -m processors.ops``: same as the ``mailpulse`` console script."""

from __future__ import annotations

import sys

from processors.ops.cli import main

sys.exit(main())
