"""Fixtures for the hardening tests: one lab and one Gunicorn for a whole module."""

import pytest

from labserver.lab import Lab, Server, lab
from tests.helpers import lab_snapshot


@pytest.fixture(scope="module")
def module_lab(tmp_path_factory, seeded_lab_template) -> Lab:
    """A fresh, migrated database with the lab user seeded, shared by one test module."""
    with lab(workdir=tmp_path_factory.mktemp("lab"), template=seeded_lab_template) as prepared:
        yield prepared


@pytest.fixture(scope="module")
def module_server(module_lab) -> Server:
    with module_lab.serve(workers=2) as server:
        yield server


@pytest.fixture
def unchanged(module_lab, session):
    """Every balance, ledger row, run and scenario row of the lab must be as it was before
    the test. ``session`` is the module's own login, with whatever it seeds, done before the
    snapshot. A module whose rows must exist first overrides this with its own check."""
    before = lab_snapshot(module_lab)
    yield
    assert lab_snapshot(module_lab) == before
