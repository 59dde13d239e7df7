"""Ports and their implementations: in memory, HTTP, files, the event store mapping."""
