"""Outbound webhooks: services register an HTTPS endpoint and receive signed, retried
deliveries of the events they chose (seed 003's manage API).

Pure parts: ``registry`` (subscription transitions), ``deliveries`` (delivery records
and what an attempt's outcome does to them), ``retry`` (schedule and outcome classes),
``ssrf`` (which URLs and addresses may be called), ``signing``, ``keys`` (table layout).
Parts that touch Kafka, Faust or the network: ``view`` (the subscriptions read from
their topic), ``agent`` (events -> deliveries), ``scheduler`` and ``sender`` (attempts),
``manage`` and ``log_api`` (HTTP).
"""
