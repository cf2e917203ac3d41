"""Gunicorn settings for the lab: `gunicorn -c gunicorn.conf.py` (override any with flags)."""

import os

wsgi_app = "bank.wsgi:application"
bind = os.environ.get("BANK_BIND", "127.0.0.1:8001")
# Sync workers, as in production: several of them, so requests really overlap.
workers = int(os.environ.get("GUNICORN_WORKERS", "4"))
worker_class = "sync"
# A worker stuck on a slow client or a dead database is killed and replaced after this long
# (GUNICORN_TIMEOUT, seconds; tests shorten it to see a slow client's worker freed).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 10
# Error log (with Django's 500 tracebacks, see LOGGING in bank/settings.py) to stderr.
errorlog = "-"
loglevel = "info"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
