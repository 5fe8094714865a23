"""A real PostgreSQL server for local runs and tests, resolved from Maven Central.

No Docker engine and no system package: Maven copies a jar of PostgreSQL's binaries into a
cache, ``initdb`` runs once into ``var/postgres/``, and the server listens on a free
loopback port as a plain process (the same shape as ``localkafka``).
"""

from localpg.server import PostgresError, Server, ServerConfig

__all__ = ["PostgresError", "Server", "ServerConfig"]
