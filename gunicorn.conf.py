"""Gunicorn settings for the lab: `gunicorn -c gunicorn.conf.py` (override any with flags)."""

import os
import sys


def _count_from_env(name: str, *, default: int, what: str) -> int:
    """A whole number above 0 from the environment; anything else stops Gunicorn with one sentence
    (left to int(), Gunicorn prints the ValueError's traceback under "Failed to read config file")."""
    value = os.environ.get(name, str(default))
    if not (value.isascii() and value.isdigit() and int(value) > 0):
        sys.exit(f"{name} must be a whole number of {what} above 0, in ASCII digits (not {value!r}).")
    return int(value)


wsgi_app = "bank.wsgi:application"
bind = os.environ.get("BANK_BIND", "127.0.0.1:8001")
# Sync workers, as in production: several of them, so requests really overlap.
workers = _count_from_env("GUNICORN_WORKERS", default=4, what="workers")
worker_class = "sync"
# A worker stuck on a slow client or a dead database is killed and replaced after this long
# (GUNICORN_TIMEOUT, seconds; tests shorten it to see a slow client's worker freed).
timeout = _count_from_env("GUNICORN_TIMEOUT", default=30, what="seconds")
graceful_timeout = 10
# Error log (with Django's 500 tracebacks, see LOGGING in bank/settings.py) to stderr.
errorlog = "-"
loglevel = "info"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None


def on_starting(server) -> None:
    """Refuse to start on settings the lab refuses (the race window's, DATABASE_URL), with the one
    sentence that says what to fix, once, in the master: left to the workers, each would fail to
    boot with that sentence buried under its own traceback, and Gunicorn's after it."""
    if server.app.app_uri != wsgi_app:
        return  # another application on these settings (the bench's floor) reads none of them
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bank.settings")
    from django.core.exceptions import ImproperlyConfigured

    from racelab.racewindow.barrier import check_settings

    try:
        check_settings()
    except ImproperlyConfigured as error:
        sys.exit(f"ImproperlyConfigured: {error}")


def when_ready(server) -> None:
    """Load the lab once, here in the master, so that each worker forks with Django set up instead
    of importing it again (about 0.4 s of CPU a worker). Gunicorn's own preload_app would load it
    before on_starting could refuse bad settings with one sentence."""
    if server.app.app_uri == wsgi_app:
        server.app.wsgi()
