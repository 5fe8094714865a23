"""``mailpulse sync``: run the subscriber; ``sync rebuild``; ``sync status [--json]``.

Settings are the ``[sync]`` table of the config file and ``MAILPULSE_SYNC__*`` variables
(sync/settings.py), not the processors': the subscriber runs beside the sender.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from pydantic import ValidationError

from ingest.logs import configure_logging
from processors.ops.common import OpsError, one_line_errors
from sync import rebuild as rebuilding
from sync.errors import SyncError
from sync.settings import SyncSettings, load_settings
from sync.store import Store, open_store
from sync.subscriber import run, stop_on_signals

Main = Callable[[SyncSettings, Store], Coroutine[Any, Any, int]]


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "sync",
        help="keep the sender's suppression table (SQLite/PostgreSQL) in step with the topic",
        description=__doc__,
    )
    parser.set_defaults(func=lambda args: _run_with_store("sync", _subscribe))
    actions = parser.add_subparsers(dest="sync_command")
    rebuild = actions.add_parser("rebuild", help="rebuild the table from the topic's beginning")
    rebuild.set_defaults(func=lambda args: _run_with_store("sync rebuild", _rebuild))
    status = actions.add_parser("status", help="the subscriber's lag and the table's counts")
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(
        func=lambda args: _run_with_store("sync status", _status_printer(args.json), logs=False)
    )


async def _subscribe(settings: SyncSettings, store: Store) -> int:
    await run(settings, store, stop_on_signals())
    return 0


async def _rebuild(settings: SyncSettings, store: Store) -> int:
    done = await rebuilding.rebuild(settings, store)
    total = sum(done.ends.values())
    print(f"rebuilt {settings.table} from {total} records: {done.applied} commands applied")
    return 0


def _status_printer(as_json: bool) -> Main:
    async def show(settings: SyncSettings, store: Store) -> int:
        report = await rebuilding.status(settings, store)
        if as_json:
            print(json.dumps(report, sort_keys=True))
        else:
            print(_status_lines(report))
        return 0

    return show


def _status_lines(r: dict[str, Any]) -> str:
    members = ", ".join(r["members"]) or "none"
    return (
        f"topic {r['topic']}: group {r['group']} {r['group_state']} (members: {members}), "
        f"lag {r['lag']}\n"
        f"table {r['table']} in {r['dsn']}: {r['rows']} rows, {r['suppressed']} suppressed, "
        f"{r['applied']} commands applied"
    )


def _run_with_store(name: str, main: Main, logs: bool = True) -> int:
    """Load the settings, open the store, run ``main``; operator-facing errors become one
    line on stderr and exit status 1 (the DSN only ever appears redacted)."""
    try:
        settings = load_settings()
    except ValidationError as exc:
        print(f"mailpulse {name}: invalid sync settings:\n{exc}", file=sys.stderr)
        return 1
    if logs:
        configure_logging(settings.log_level)

    def opened() -> int:
        store = open_store(settings.dsn.get_secret_value())
        try:
            return asyncio.run(main(settings, store))
        finally:
            store.close()

    return one_line_errors(name, opened, (SyncError, OpsError))
