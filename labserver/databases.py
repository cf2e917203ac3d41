"""Create and drop a throwaway database beside the one ``DATABASE_URL`` names."""

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
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
    admin = _ADMIN_CONNECTIONS[settings["ENGINE"]]
    admin(settings, f"CREATE DATABASE {name}")
    try:
        yield _with_database_name(base_url, name)
    finally:
        admin(settings, _DROP_STATEMENTS[settings["ENGINE"]].format(name=name))


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
    import MySQLdb

    connection = MySQLdb.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=int(settings["PORT"] or 3306),
        user=settings["USER"] or "root",
        password=settings["PASSWORD"] or "",
    )
    try:
        connection.cursor().execute(statement)
    finally:
        connection.close()


_ADMIN_CONNECTIONS = {
    "django.db.backends.postgresql": _postgres,
    "django.db.backends.mysql": _mysql,
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
