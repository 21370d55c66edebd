"""Benchmarks: the engine measured against raw SQL on the same database (``make bench``)."""
