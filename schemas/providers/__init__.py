"""Pydantic models of each provider's webhook payload, one module per provider.

They model what the mapping needs and ignore everything else, so a field a provider
adds later does not break parsing. Event types are plain strings here: the mappers in
``processors/mappers`` decide what each one means (and which ones they do not know).
"""
