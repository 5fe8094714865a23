"""Everything that touches Faust's internals, behind small typed interfaces.

Agents (processors/agents.py) only read state, call the pure step and write; the
machinery that makes that safe lives here:

* ``offsets``: records reach an agent in offset order with no hole (``OffsetGuard``).
* ``writer``: an event is acked only once its commands and changelog records are on the
  broker, in order (``OrderedWriter``).
* ``store``: a table's local RocksDB store, written only with what the changelog already
  holds, so a restarted worker keeps it and reads only the changelog it lacks; and
  ``ParsedCache``, so a busy key is not parsed again for every event.
* ``scan``: ordered reads over a table's local partitions (the suppression list).
* ``routing``: which worker owns a key or partition, and whether this one can answer.
"""
