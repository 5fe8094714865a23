"""``python -m ingest`` / ``mailpulse-ingest``: serve webhooks until SIGTERM."""

from __future__ import annotations

import sys

from aiohttp import web

from ingest.app import create_app
from ingest.logs import configure_logging
from ingest.settings import load_settings


def main() -> int:
    settings = load_settings()
    configure_logging(settings.log_level)
    import uvloop

    # On SIGTERM run_app stops listening, lets in-flight handlers finish their appends
    # (up to shutdown_grace_s), then runs cleanup, which flushes and closes the producer.
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_grace_s,
        access_log=None,
        print=lambda msg: print(msg, file=sys.stderr),
        loop=uvloop.new_event_loop(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
