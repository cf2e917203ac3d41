"""Turn a database that cannot be used into one clear sentence instead of a driver's traceback."""

import functools
from collections.abc import Callable

from django.core.management import CommandError
from django.db import InterfaceError, OperationalError, connection

_VENDOR_NAMES = {"postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB", "sqlite": "SQLite"}


def database_description() -> str:
    """Which database DATABASE_URL names, without its password: ``PostgreSQL 'bank' at 127.0.0.1:5432``."""
    settings = connection.settings_dict
    vendor = _VENDOR_NAMES.get(connection.vendor, connection.vendor)
    if connection.vendor == "sqlite":
        return f"the {vendor} file {settings['NAME']}"
    host = settings["HOST"] or "localhost"
    port = settings["PORT"] or "its default port"
    return f"the {vendor} database {settings['NAME']!r} at {host}:{port}"


def database_error_message(error: Exception) -> str:
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    where = (
        "that DATABASE_URL names a file in a folder you can write"
        if connection.vendor == "sqlite"
        else "that its server is running, that DATABASE_URL names it"
    )
    return (
        f"Cannot use {database_description()}: {detail}. Check {where}, and that it is migrated "
        "(`manage.py migrate`)."
    )


def reports_database_errors(handle: Callable) -> Callable:
    """Decorate a command's ``handle`` so an unreachable or unusable database is a CommandError."""

    @functools.wraps(handle)
    def wrapper(*args, **options):
        try:
            return handle(*args, **options)
        except (OperationalError, InterfaceError) as error:
            raise CommandError(database_error_message(error)) from error

    return wrapper
