"""``mailpulse redrive``: not built yet (issue 6)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def run(args: argparse.Namespace) -> int:
    print("mailpulse redrive: not implemented yet", file=sys.stderr)
    return 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("redrive", help="not implemented yet")
    parser.set_defaults(func=run)
