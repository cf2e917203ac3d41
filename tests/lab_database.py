"""A lab's database used from the test process through a Django connection of its own.

What a test checks or prepares around what a real server or command does to the lab's rows,
without a ``manage.py`` subprocess (about half a second of start-up) for every look. A command
whose own behaviour a test checks (its exit code, its messages) still runs as ``lab.manage()``.
"""

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from unittest import mock

from django.apps import apps
from django.core import serializers
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections

from bank.database_url import database_from_url
from labserver.lab import Lab

# Set for the session by tests/conftest.py: pytest-django blocks every connection a test has not
# asked for with its django_db mark, and a lab's database is not the test database it guards.
db_blocker = None


def dumped(lab_env: Lab, *labels: str) -> list[dict]:
    """The rows of these apps (``accounts``) or models (``accounts.transaction``) of the lab's
    database, each ``{"model", "pk", "fields"}`` exactly as ``manage.py dumpdata`` prints it."""
    models = [
        model
        for label in labels
        for model in ([apps.get_model(label)] if "." in label else apps.get_app_config(label).get_models())
    ]
    with _connection_to(lab_env.database_url) as alias:
        rows = (row for model in models for row in model._default_manager.using(alias).order_by("pk"))
        return json.loads(serializers.serialize("json", rows))


def command(lab_env: Lab, *args: str, env: dict[str, str] | None = None) -> str:
    """What ``manage.py *args`` prints, run in this process against the lab's database, with
    ``env`` added to the environment for the call."""
    output = StringIO()
    with mock.patch.dict(os.environ, env or {}), _connection_to(lab_env.database_url) as alias:
        own_default = getattr(connections._connections, DEFAULT_DB_ALIAS, None)
        # The project's code runs on the default connection: for this call, it is the lab's.
        connections[DEFAULT_DB_ALIAS] = connections[alias]
        try:
            call_command(*args, stdout=output, stderr=StringIO())
        finally:
            if own_default is None:
                delattr(connections._connections, DEFAULT_DB_ALIAS)
            else:
                connections[DEFAULT_DB_ALIAS] = own_default
    return output.getvalue()


@contextmanager
def _connection_to(database_url: str) -> Iterator[str]:
    """The alias of a connection to the database ``database_url`` names, closed after use (the
    lab drops its database at the end, and a server or command writes it in between)."""
    alias = f"lab-{hashlib.sha256(database_url.encode()).hexdigest()[:12]}"
    if alias not in connections.settings:
        settings = {"default": database_from_url(database_url)}
        connections.settings[alias] = connections.configure_settings(settings)["default"]
    with db_blocker.unblock():
        try:
            yield alias
        finally:
            connections[alias].close()
