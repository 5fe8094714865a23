"""Operator commands over the raw log and the tables: ``mailpulse <command>``.

Each command lives in its own module with ``register(subparsers)``, which adds its
sub-parser and sets ``func`` (``argparse.Namespace -> int`` exit code).
"""
