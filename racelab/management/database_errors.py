"""Turn a database that cannot be used into one clear sentence instead of a driver's traceback."""

import functools
from collections.abc import Callable

from django.core.management import CommandError
from django.db import DatabaseError, DataError, IntegrityError, connection

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


def database_error_message(error: DatabaseError) -> str:
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, DataError | IntegrityError):
        # The database was reached and answered: it refused a value or a duplicate the command's
        # own checks let through (or a concurrent command wrote first). Its reason is the news.
        where = database_description()
        return (
            f"{where[0].upper()}{where[1:]} refused what the command wrote: {detail}. Check the "
            "values you gave, or run the command again if another one was writing at the same time."
        )
    # OperationalError, InterfaceError (unreachable, wrong credentials, unwritable file) and
    # ProgrammingError (on PostgreSQL and MariaDB, a table that is not there: not migrated).
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
    """Decorate a command's ``handle`` so an unreachable or unusable database is a CommandError.

    Every error of Django's database layer derives from DatabaseError, whatever the backend
    calls it (a missing table is an OperationalError on SQLite, a ProgrammingError elsewhere).
    """

    @functools.wraps(handle)
    def wrapper(*args, **options):
        try:
            return handle(*args, **options)
        except DatabaseError as error:
            raise CommandError(database_error_message(error)) from error

    return wrapper
