"""The sender side of ``suppression.commands``: ``mailpulse sync`` keeps a suppression
table in the sender's own database (SQLite or PostgreSQL), and ``SuppressionList`` reads
it on the send path.

Importing this package brings the read side only (``sync.client``); the subscriber
(``sync.subscriber``, Kafka) is imported by the CLI.
"""

from sync.client import NotSynced, SuppressionList

__all__ = ["NotSynced", "SuppressionList"]
