"""Durable state: the SQLite store and its backups."""
