"""``./dev up`` says "mailpulse is up" only once both services answer, else names the one
that did not (localkafka/stack.py's readiness wait, against local HTTP servers)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from localkafka.stack import Probe, wait_ready
from tests.integration.stack import free_port


@contextlib.contextmanager
def server(status: int) -> Iterator[str]:
    """A local HTTP server answering ``status`` to every GET; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def running(_: str) -> int | None:
    return None


def test_ready_when_both_answer() -> None:
    with server(200) as ingest, server(200) as worker:
        checks = (Probe("ingest", f"{ingest}/readyz"), Probe("processors", f"{worker}/x"))
        assert wait_ready(checks, running, timeout_s=5, poll_s=0.05) == {}


def test_names_the_service_that_does_not_answer_within_the_timeout() -> None:
    closed = f"http://127.0.0.1:{free_port()}/openapi.json"
    with server(503) as ingest, server(200) as worker:
        checks = (Probe("ingest", f"{ingest}/readyz"), Probe("processors", f"{worker}/"))
        failed = wait_ready(checks, running, timeout_s=0.3, poll_s=0.05)
        assert list(failed) == ["ingest"]
        assert failed["ingest"] == f"{ingest}/readyz answered 503 after 0 s"
        checks = (Probe("ingest", f"{ingest}/readyz"), Probe("processors", closed))
        failed = wait_ready(checks, running, timeout_s=0.3, poll_s=0.05)
    assert set(failed) == {"ingest", "processors"}
    assert failed["processors"].startswith(f"{closed} did not answer (")


def test_a_service_that_exits_is_reported_at_once() -> None:
    checks = (Probe("processors", f"http://127.0.0.1:{free_port()}/"),)
    failed = wait_ready(checks, lambda name: 1, timeout_s=60, poll_s=0.05)
    assert failed == {"processors": f"exited with code 1 before answering at {checks[0].url}"}
