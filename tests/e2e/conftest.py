import json

import pytest

from labserver.lab import Lab, Server, lab

LAB_USER = "lab-user"
LAB_PASSWORD = "correct horse battery staple"


@pytest.fixture
def lab_env(tmp_path) -> Lab:
    """A fresh, migrated database of the kind DATABASE_URL names (SQLite by default)."""
    with lab(workdir=tmp_path) as prepared:
        yield prepared


@pytest.fixture
def lab_server(lab_env) -> Server:
    """The real Gunicorn from gunicorn.conf.py on a free loopback port, with a seeded user."""
    seed(lab_env)
    with lab_env.serve() as server:
        yield server


def seed(lab_env: Lab, *, balance: int = 1_000_000, minimum: int = 0) -> None:
    lab_env.manage(
        "seed_account", "--username", LAB_USER, "--balance", str(balance), "--minimum", str(minimum),
        "--no-input", env={"BANK_PASSWORD": LAB_PASSWORD},
    )  # fmt: skip


def splatter(lab_env: Lab, server: Server, *args: str, check: bool = True):
    return lab_env.manage(
        "splatter", "--url", server.url, "--username", LAB_USER, "--no-input", *args,
        env={"BANK_PASSWORD": LAB_PASSWORD}, check=check,
    )  # fmt: skip


def audit(lab_env: Lab) -> dict:
    (account,) = json.loads(lab_env.manage("audit_transactions", "--format", "json").stdout)
    return account
