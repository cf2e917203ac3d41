"""Read DATABASE_URL into a DATABASES entry for one of the three databases the lab runs on."""

import re

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# The three databases the lab runs on, by the engine dj_database_url gives their URL schemes.
SUPPORTED_DATABASE_ENGINES = (
    "django.db.backends.sqlite3",
    "django.db.backends.postgresql",
    "django.db.backends.mysql",
)
DATABASE_URL_FORMS = (
    "sqlite:///path/to/file.sqlite3, postgres://user:password@host:5432/name "
    "or mysql://user:password@host:3306/name"
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def database_from_url(url: str) -> dict:
    """DATABASE_URL as a DATABASES entry, or ImproperlyConfigured with a sentence a user can act on.

    Raised here, before any command runs: manage.py prints it without a traceback. The URL is
    never repeated, only its scheme: it may hold a password.
    """
    scheme, separator, _ = url.partition("://")
    # Persistent connections: opening one per request makes PostgreSQL several times slower.
    # Health checks let a worker recover by itself after the database restarts.
    try:
        database = dj_database_url.parse(url, conn_max_age=600, conn_health_checks=True)
    except dj_database_url.ParseError:
        problem = "it is not a valid URL (a special character in the password must be %-quoted)"
    except ValueError:  # UnknownSchemeError
        # What stands before :// is a scheme only if it reads as one: in 'user:pw@host://' it is
        # the password.
        is_scheme = separator and _SCHEME.fullmatch(scheme)
        problem = f"its scheme is {scheme!r}" if is_scheme else "it is not a URL"
    else:
        if database["ENGINE"] in SUPPORTED_DATABASE_ENGINES:
            return _with_lab_options(database)
        problem = f"its scheme {scheme!r} names a database the lab does not run on"
    raise ImproperlyConfigured(
        f"DATABASE_URL must name a database the lab runs on, with the scheme sqlite, postgres or "
        f"mysql, MariaDB's too ({DATABASE_URL_FORMS}), but {problem}. Fix it, or unset it to use db.sqlite3."
    )


def _with_lab_options(database: dict) -> dict:
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets readers run beside the writer; the busy timeout makes writers queue instead of
        # failing; IMMEDIATE takes the write lock at BEGIN, so a read-then-write atomic block cannot
        # fail with "database is locked" when it upgrades (SQLite ignores select_for_update).
        # bank.sqlite is Django's backend with its writers queued on a file lock.
        database["ENGINE"] = "bank.sqlite"
        database["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    elif database["ENGINE"] == "django.db.backends.mysql":
        # InnoDB's own default (REPEATABLE READ) still loses updates; say READ COMMITTED explicitly.
        database["OPTIONS"] = {
            "isolation_level": "read committed",
            "charset": "utf8mb4",
        }
    return database
