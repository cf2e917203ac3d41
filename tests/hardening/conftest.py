"""Fixtures for the hardening tests: one lab for a whole module, and database snapshots."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from labserver.lab import Lab, Server, lab
from loadgen.login import SessionCookies, log_in
from loadgen.target import parse_target
from tests.e2e.conftest import LAB_PASSWORD, LAB_USER, seed

# Balances, ledger rows and client runs: what a refused request or command must leave alone.
SNAPSHOT_MODELS = ("accounts",)


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


def lab_snapshot(lab_env: Lab) -> list[dict]:
    """Every account, ledger row and client run of the lab's database, as dumpdata sees it."""
    return json.loads(lab_env.manage("dumpdata", *SNAPSHOT_MODELS).stdout)


def database_snapshot() -> list[dict]:
    """The same for the test database of this process."""
    output = StringIO()
    call_command("dumpdata", *SNAPSHOT_MODELS, stdout=output)
    return json.loads(output.getvalue())


def log_in_lab_user(server: Server, workdir: Path, *, username: str = LAB_USER) -> SessionCookies:
    return log_in(target=parse_target(server.url), username=username, password=LAB_PASSWORD, workdir=workdir)
