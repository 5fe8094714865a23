"""The reference "what users write today": seed 001 step 6, run as written.

Synchronous Flask: verify the HMAC, parse the JSON, then do the work inline: the
suppression goes to a SQLite database with one commit per request (SQLite's defaults,
so every commit is a journal write plus fsync). Served by werkzeug's threaded server,
one thread per keep-alive connection.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sqlite3
import threading
import time
from pathlib import Path

from flask import Flask, Response, jsonify, request

SCHEMA = """
CREATE TABLE IF NOT EXISTS suppressions (
    email TEXT PRIMARY KEY, reason TEXT NOT NULL, suppressed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
    email TEXT PRIMARY KEY, subscribed INTEGER NOT NULL, updated_at REAL NOT NULL);
"""


def create_reference_app(secret: str, db_path: Path) -> Flask:
    app = Flask("reference")
    local = threading.local()
    with sqlite3.connect(db_path) as db:
        db.executescript(SCHEMA)

    def database() -> sqlite3.Connection:
        # sqlite3 connections belong to the thread that opened them.
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(db_path, timeout=10)
            local.conn = conn
        return conn

    def verify_signature(raw_body: bytes, signature: str) -> bool:
        expected = hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    def suppress_address(email: str, reason: str = "hard_bounce") -> None:
        db = database()
        db.execute(
            "INSERT INTO suppressions VALUES (?, ?, ?) ON CONFLICT(email) DO UPDATE "
            "SET reason = excluded.reason, suppressed_at = excluded.suppressed_at",
            (email, reason, time.time()),
        )
        db.commit()

    def update_subscription(email: str, subscribed: bool) -> None:
        db = database()
        db.execute(
            "INSERT INTO subscriptions VALUES (?, ?, ?) ON CONFLICT(email) DO UPDATE "
            "SET subscribed = excluded.subscribed, updated_at = excluded.updated_at",
            (email, int(subscribed), time.time()),
        )
        db.commit()

    @app.route("/webhooks/email", methods=["POST"])
    def handle_webhook() -> tuple[Response | str, int]:
        sig = request.headers.get("X-NexusProMail-Signature", "")
        if not verify_signature(request.data, sig):
            return jsonify({"error": "Invalid signature"}), 401
        event = request.get_json()
        if event["type"] == "bounced.hard":
            suppress_address(event["data"]["email"])
        elif event["type"] == "complained":
            suppress_address(event["data"]["email"], reason="complaint")
        elif event["type"] == "unsubscribed":
            update_subscription(event["data"]["email"], subscribed=False)
        return "", 200  # Always acknowledge promptly

    @app.route("/healthz")
    def healthz() -> tuple[str, int]:
        return "ok", 200

    return app


def serve_reference(host: str, port: int, secret: str, db_path: Path) -> None:
    from werkzeug.serving import make_server

    # Per-request access lines off, as in the aiohttp variants.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(host, port, create_reference_app(secret, db_path), threaded=True)
    server.serve_forever()
