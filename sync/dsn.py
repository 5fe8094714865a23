"""Database URLs shown safely: the password masked in a DSN, and scrubbed from a driver's
error text (libpq quotes the part of a URI it could not parse, password included)."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

_QUERY_PASSWORD = re.compile(r"(?i)(\bpassword=)([^&]*)")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_UNPARSABLE = "<a DSN that does not parse as a URL>"


def scheme(dsn: str) -> str | None:
    """The URL scheme of ``dsn``, lower-cased; None when it has none (e.g. libpq's
    ``host=db password=...`` form), so that no part of it need be echoed."""
    head, colon, _ = dsn.partition(":")
    return head.lower() if colon and _SCHEME.fullmatch(head.lower()) else None


def redact(dsn: str) -> str:
    """``dsn`` with its password (in the user part or a ``password=`` query parameter)
    replaced by ``***``: safe for logs and errors."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return _UNPARSABLE
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
    query = _QUERY_PASSWORD.sub(r"\1***", parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return dsn  # nothing to mask (and ``sqlite:///x`` keeps its empty host)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def scrub(text: str, dsn: str) -> str:
    """``text`` with every spelling of ``dsn``'s password (raw and percent-decoded)
    replaced by ``***``."""
    secrets: set[str] = set()
    userinfo = dsn.partition("://")[2].split("/", 1)[0].rpartition("@")[0]
    if ":" in userinfo:
        secrets.add(userinfo.split(":", 1)[1])
    secrets.update(m.group(2) for m in _QUERY_PASSWORD.finditer(dsn))
    for secret in sorted(secrets | {unquote(s) for s in secrets}, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text
