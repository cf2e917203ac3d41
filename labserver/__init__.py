"""Stand the lab up for tests and benchmarks: a fresh database, migrated, and a real Gunicorn on it."""
