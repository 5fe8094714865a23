"""``mailpulse``: the operator CLI (status, replay, rebuild, re-publish, DLQ re-drive, SNS
confirmations, sync).

Settings (broker, topic prefix, app id, generation) are the processors' own: the same
config file and ``MAILPULSE_PROCESSORS__*`` environment the workers read. ``sync``, the
subscriber that runs beside a sender, reads its own ``[sync]`` settings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from types import ModuleType

from processors.ops import rebuild, redrive, replay, republish, sns, status
from sync import cli as sync

COMMANDS: tuple[ModuleType, ...] = (status, replay, rebuild, republish, redrive, sns, sync)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailpulse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
