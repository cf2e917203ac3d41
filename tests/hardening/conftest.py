"""Fixtures for the hardening tests: one lab and one Gunicorn for a whole module."""

import pytest

from labserver.lab import Lab, Server, lab
from tests.helpers import seed


@pytest.fixture(scope="module")
def module_lab(tmp_path_factory) -> Lab:
    """A fresh, migrated database with the lab user seeded, shared by one test module."""
    with lab(workdir=tmp_path_factory.mktemp("lab")) as prepared:
        seed(prepared)
        yield prepared


@pytest.fixture(scope="module")
def module_server(module_lab) -> Server:
    with module_lab.serve(workers=2) as server:
        yield server
