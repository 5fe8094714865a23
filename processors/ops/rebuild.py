"""``mailpulse rebuild``: not built yet (issue 6)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def run(args: argparse.Namespace) -> int:
    print("mailpulse rebuild: not implemented yet", file=sys.stderr)
    return 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("rebuild", help="not implemented yet")
    parser.set_defaults(func=run)
