"""Ingest: verify a provider's webhook signature, append the raw body to Kafka, answer."""
