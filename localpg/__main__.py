"""``python -m localpg {fetch,start,stop,status,dsn}`` — the local PostgreSQL server."""

from __future__ import annotations

import argparse
import sys
import time

from localpg.server import PostgresError, Server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localpg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="resolve PostgreSQL's binaries with Maven (no-op when cached)")
    start = sub.add_parser("start", help="initdb once, start on a free loopback port")
    start.add_argument("--timeout", type=float, default=60.0)
    sub.add_parser("stop", help="stop the server this tool started")
    sub.add_parser("status", help="say whether the server runs and answers")
    dsn = sub.add_parser("dsn", help="print the libpq URI of the running server (password too)")
    dsn.add_argument("--database", default="postgres")
    args = parser.parse_args(argv)

    server = Server()
    try:
        if args.command == "fetch":
            print(server.fetch())
        elif args.command == "start":
            began = time.monotonic()
            server.start(timeout=args.timeout)
            took = time.monotonic() - began
            print(
                f"PostgreSQL {server.config.version} ready on {server.config.host}:"
                f"{server.port()} ({took:.1f}s; log {server.log_file})"
            )
        elif args.command == "stop":
            print("server stopped" if server.stop() else "no server of ours was running")
        elif args.command == "status":
            ready = server.running() and server.answers()
            print(f"running={server.running()} port={server.port()} ready={ready}")
            return 0 if ready else 1
        elif args.command == "dsn":
            print(server.dsn(args.database))
    except PostgresError as exc:
        print(f"localpg: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
