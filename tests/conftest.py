import os

import pytest

from labserver.lab import Lab, lab
from tests import lab_database
from tests.expected_skips import ExpectedSkips, expected_here
from tests.helpers import running_in_ci, seed

# PostgreSQL waits this long on a lock before it looks for a deadlock (its default: 1 s). The
# transfer scenario's tests deadlock on purpose, dozens of times a run.
DEADLOCK_TIMEOUT = "50ms"


def pytest_configure(config):
    if running_in_ci():
        config.pluginmanager.register(ExpectedSkips(expected_here()), "expected-skips")
    _short_deadlock_timeout()


def _short_deadlock_timeout() -> None:
    """Every PostgreSQL session of the run (this process, its manage.py commands and Gunicorns)
    looks for deadlocks after DEADLOCK_TIMEOUT, where the role may set it (a superuser)."""
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url.startswith(("postgres:", "postgresql:")) and "PGOPTIONS" not in os.environ:
        options = f"-c deadlock_timeout={DEADLOCK_TIMEOUT}"
        if _postgres_accepts(database_url, options=options):
            os.environ["PGOPTIONS"] = options


def _postgres_accepts(database_url: str, *, options: str) -> bool:
    import psycopg

    try:
        psycopg.connect(database_url, options=options).close()
    except psycopg.Error:
        return False
    return True


@pytest.fixture
def fast_password_hasher(settings):
    """PBKDF2's deliberate slowness (~0.5 s a hash) buys an in-process test nothing. (Not for a
    lab's users: its Gunicorn checks their passwords with the project's own hashers.)"""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """Run SQLite tests on a file, not in memory, so threads each get a real connection; the test
    database of each xdist worker is its own (pytest-django's suffix, which this replaces)."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] in ("django.db.backends.sqlite3", "bank.sqlite"):
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("sqlite") / "test.sqlite3")


@pytest.fixture(scope="session", autouse=True)
def lab_databases_readable(django_db_blocker):
    """Let tests/lab_database.py read the labs' databases, which pytest-django does not guard."""
    lab_database.db_blocker = django_db_blocker


@pytest.fixture(scope="session")
def lab_template(tmp_path_factory) -> Lab:
    """One database of the session's kind migrated once: every lab of the session starts as its copy."""
    with lab(workdir=tmp_path_factory.mktemp("lab-template")) as migrated:
        yield migrated


@pytest.fixture(scope="session")
def seeded_lab_template(lab_template, tmp_path_factory) -> Lab:
    """The template with the lab user seeded (``tests.helpers.seed``'s defaults)."""
    with lab(workdir=tmp_path_factory.mktemp("seeded-lab-template"), template=lab_template) as seeded:
        seed(seeded)
        yield seeded
