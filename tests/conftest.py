import pytest


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory):
    """Run SQLite tests on a file, not in memory, so threads each get a real connection."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] in ("django.db.backends.sqlite3", "bank.sqlite"):
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("sqlite") / "test.sqlite3")
