"""A real Apache Kafka broker for local runs and tests, resolved from Maven Central.

No Docker engine is needed: Maven copies the broker's jars into a cache, the storage is
formatted once for a single KRaft node, and the broker runs as a plain ``java`` process.
"""

from localkafka.broker import Broker, BrokerConfig, BrokerError, Cluster

__all__ = ["Broker", "BrokerConfig", "BrokerError", "Cluster"]
