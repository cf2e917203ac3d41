"""Create and drop a throwaway database beside the one ``DATABASE_URL`` names."""

import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url


@contextmanager
def fresh_database(*, base_url: str | None, workdir: Path) -> Iterator[str]:
    """Yield the URL of a new, empty database of the same kind as ``base_url``; drop it after.

    ``None`` or a SQLite URL gives a new SQLite file in ``workdir``. For PostgreSQL and MariaDB
    the server and credentials of ``base_url`` are used to create a uniquely named database.
    """
    if not base_url or base_url.startswith("sqlite"):
        yield f"sqlite:///{workdir / f'lab-{secrets.token_hex(4)}.sqlite3'}"
        return
    settings = dj_database_url.parse(base_url)
    name = f"lab_{secrets.token_hex(6)}"
    _ADMIN_CONNECTIONS[settings["ENGINE"]](settings, f"CREATE DATABASE {name}")
    with _dropped_after(settings, name=name):
        yield _with_database_name(base_url, name)


@contextmanager
def copied_database(*, source_url: str, workdir: Path) -> Iterator[str]:
    """Yield the URL of a new database holding the schema and rows of ``source_url``'s; drop it after.

    A migrated database copied is a lab in a fraction of the time a migration takes. Nothing may
    write the source meanwhile, and on PostgreSQL nothing may be connected to it at all (it is
    copied as a template).
    """
    if source_url.startswith("sqlite"):
        copy_path = workdir / f"lab-{secrets.token_hex(4)}.sqlite3"
        source_path = dj_database_url.parse(source_url)["NAME"]
        # The backup API copies a consistent database whatever its journal holds.
        with closing(sqlite3.connect(source_path)) as source, closing(sqlite3.connect(copy_path)) as copy:
            source.backup(copy)
        yield f"sqlite:///{copy_path}"
        return
    settings = dj_database_url.parse(source_url)
    name = f"lab_{secrets.token_hex(6)}"
    _COPIERS[settings["ENGINE"]](settings, source=settings["NAME"], name=name)
    with _dropped_after(settings, name=name):
        yield _with_database_name(source_url, name)


@contextmanager
def _dropped_after(settings: dict, *, name: str) -> Iterator[None]:
    try:
        yield
    finally:
        engine = settings["ENGINE"]
        _ADMIN_CONNECTIONS[engine](settings, _DROP_STATEMENTS[engine].format(name=name))


def _with_database_name(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _postgres(settings: dict, statement: str) -> None:
    import psycopg

    with psycopg.connect(
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as connection:
        connection.execute(statement)


def _mysql(settings: dict, statement: str) -> None:
    with closing(_mysql_connection(settings)) as connection:
        connection.cursor().execute(statement)


def _mysql_connection(settings: dict):
    import MySQLdb

    return MySQLdb.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=int(settings["PORT"] or 3306),
        user=settings["USER"] or "root",
        password=settings["PASSWORD"] or "",
        charset="utf8mb4",
    )


def _copy_postgres(settings: dict, *, source: str, name: str) -> None:
    _postgres(settings, f"CREATE DATABASE {name} TEMPLATE {source}")


def _copy_mysql(settings: dict, *, source: str, name: str) -> None:
    """Each table created as the source's ``SHOW CREATE TABLE`` says (its foreign keys included,
    which ``CREATE TABLE ... LIKE`` would drop, and InnoDB's locking depends on), then filled."""
    with closing(_mysql_connection(settings)) as connection:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "AND table_type = 'BASE TABLE' ORDER BY table_name",
            [source],
        )
        tables = [table for (table,) in cursor.fetchall()]
        cursor.execute(f"CREATE DATABASE {name}")
        try:
            cursor.execute(f"USE {name}")
            cursor.execute("SET foreign_key_checks = 0")
            for table in tables:
                cursor.execute(f"SHOW CREATE TABLE `{source}`.`{table}`")
                ((_, create),) = cursor.fetchall()
                cursor.execute(create)
                cursor.execute(f"INSERT INTO `{table}` SELECT * FROM `{source}`.`{table}`")
        except Exception:
            cursor.execute(f"DROP DATABASE {name}")
            raise


_ADMIN_CONNECTIONS = {
    "django.db.backends.postgresql": _postgres,
    "django.db.backends.mysql": _mysql,
}
_COPIERS = {
    "django.db.backends.postgresql": _copy_postgres,
    "django.db.backends.mysql": _copy_mysql,
}
_DROP_STATEMENTS = {
    "django.db.backends.postgresql": "DROP DATABASE IF EXISTS {name} WITH (FORCE)",
    "django.db.backends.mysql": "DROP DATABASE IF EXISTS {name}",
}


def server_port(url: str) -> int | None:
    """The TCP port of the server ``url`` names; None for SQLite, a file every host shares."""
    settings = dj_database_url.parse(url)
    if settings["ENGINE"] not in _DEFAULT_PORTS:
        return None
    return int(settings["PORT"] or _DEFAULT_PORTS[settings["ENGINE"]])


def reached_at(url: str, *, address: str, port: int) -> str:
    """``url`` with its server at ``address:port`` instead (a forward to it), the rest unchanged."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{address}:{port}" if credentials else f"{address}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


_DEFAULT_PORTS = {
    "django.db.backends.postgresql": 5432,
    "django.db.backends.mysql": 3306,
}
