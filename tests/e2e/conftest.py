"""Fixtures for the end-to-end tests: a fresh lab database and the real Gunicorn serving it."""

import pytest

from labserver.lab import Lab, Server, lab
from tests.helpers import require_ab, seed


@pytest.fixture
def lab_env(tmp_path, lab_template) -> Lab:
    """A fresh, migrated database of the kind DATABASE_URL names (SQLite by default)."""
    with lab(workdir=tmp_path, template=lab_template) as prepared:
        yield prepared


@pytest.fixture
def lab_server(lab_env) -> Server:
    """The real Gunicorn from gunicorn.conf.py on a free loopback port, with a seeded user."""
    seed(lab_env)
    with lab_env.serve() as server:
        yield server


@pytest.fixture
def needs_ab() -> None:
    """For a test that fires ab: skipped without ab and curl, failed without them under CI."""
    require_ab()
