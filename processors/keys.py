"""Key layout of the ``addresses`` and ``messages`` tables (bytes, sorted bytewise).

One table holds a record per owner and the owner's index entries, all in the owner's
partition, so that one changelog partition orders them and one local store holds them:

* ``<owner>``: the owner's state (AddressState / MessageState JSON). Owners are
  normalised addresses and provider message ids: never empty, no control characters.
* ``\\x00<owner>\\x00<bucket>\\x00<dedupe key>``: a remembered dedupe key
  (processors/dedupe.py); ``bucket`` is ten decimal digits, so a bucket is a key prefix.
* ``\\x01<scope>\\x00<address>``: the address's ``ScopeSuppression`` JSON while that scope
  is suppressed (addresses table only): the suppression list reads a page of it in key
  order, whatever the table's size.

Internal keys start below every owner's first byte, so a scan of owners skips them.
"""

from __future__ import annotations

DEDUPE = b"\x00"
SUPPRESSION = b"\x01"
_SEP = b"\x00"


def is_internal(key: bytes) -> bool:
    """An index entry rather than an owner's state record."""
    return key[:1] in (DEDUPE, SUPPRESSION)


def dedupe_bucket(owner: str, bucket: int) -> bytes:
    """Prefix of every dedupe entry of ``owner`` in ``bucket``."""
    return DEDUPE + owner.encode() + _SEP + b"%010d" % bucket + _SEP


def dedupe_entry(owner: str, bucket: int, key: str) -> bytes:
    return dedupe_bucket(owner, bucket) + key.encode()


def suppression_prefix(scope: str) -> bytes:
    return SUPPRESSION + scope.encode() + _SEP


def suppression_entry(scope: str, address: str) -> bytes:
    return suppression_prefix(scope) + address.encode()
