"""Helpers the tests share: constants, the lab's commands, snapshots and strategy parameters.

A plain module, imported as ``from tests.helpers import ...``; fixtures live in the conftest.py
files and use these.
"""

import json
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import User

from accounts.models import Account, Run, Transaction
from accounts.withdrawals import SAFE_STRATEGIES, Strategy
from labreport.models import RecordedRequest
from labserver.lab import LAB_LOGIN, Lab, Server
from racelab.loadgen.login import SessionCookies, log_in
from racelab.loadgen.target import parse_target
from tests.json_schema import valid
from tests.lab_database import command, dumped

# The user every end-to-end and hardening lab seeds, and the password of every test user.
LAB_USER = "lab-user"
LAB_PASSWORD = "correct horse battery staple"
# The password of the users the in-process tests create.
PASSWORD = LAB_PASSWORD
# A fixed request start for hand-made ledger rows.
STARTED_AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def running_in_ci() -> bool:
    return os.environ.get("CI") == "true"


def require(condition: bool, reason: str) -> None:
    """Skip the test when ``condition`` is false, or fail it when ``CI`` is ``"true"``.

    For what the machine should have (curl, ab, ``unshare -n``): a developer's laptop may lack it,
    CI must not quietly skip the test. A test that does not apply to the configured database is a
    plain ``pytest.skip``, not this.
    """
    if condition:
        return
    if running_in_ci():
        pytest.fail(f"{reason} (CI=true: this machine must have it)")
    pytest.skip(reason)


# The Redis this machine kind runs (and .ci/run starts where it is missing).
REDIS_URL = "redis://127.0.0.1:6379/0"


def require_redis() -> None:
    """For the Redis race window's tests: skipped without Redis, failed without it under CI."""
    from racelab.racewindow import redis_backend
    from racelab.racewindow.window import RaceWindowError

    try:
        redis_backend.ping(REDIS_URL)
    except RaceWindowError as error:
        require(False, f"{error} (apt-get install redis-server)")


def require_ab() -> None:
    """ab fires the load and curl logs in for it, as in the blog: both must be installed."""
    for tool, package in (("ab", "apache2-utils"), ("curl", "curl")):
        require(shutil.which(tool) is not None, f"{tool} is not installed (apt-get install {package})")


# --- The lab: a real manage.py and Gunicorn in subprocesses ------------------------------------


def seed(lab_env: Lab, *, balance: int = 1_000_000, minimum: int = 0, username: str = LAB_USER) -> None:
    command(
        lab_env, "seed_account", "--username", username, "--balance", str(balance), "--minimum", str(minimum),
        "--no-input", env={"BANK_PASSWORD": LAB_PASSWORD},
    )  # fmt: skip


def splatter(
    lab_env: Lab,
    server: Server,
    *args: str,
    username: str = LAB_USER,
    check: bool = True,
    timeout: float = 600,
):
    return lab_env.manage(
        "splatter", "--url", server.url, "--username", username, "--no-input", *args,
        env={"BANK_PASSWORD": LAB_PASSWORD}, check=check, timeout=timeout,
    )  # fmt: skip


# What splatter prints for each run it records, ab's way and the burst driver's way.
RECORDED_RUN = re.compile(
    r"^Recorded run (?P<id>\d+)(?: on account \d+)?: (?P<ok>\d+) ok, (?P<refused>\d+) refused, "
    r"(?P<indeterminate>\d+) indeterminate\.",
    re.MULTILINE,
)


def recorded_runs(output: str) -> list[dict[str, int]]:
    """The outcome counts of every run a splatter output says it recorded."""
    return [
        {key: int(value) for key, value in match.groupdict().items()}
        for match in RECORDED_RUN.finditer(output)
    ]


def audit(lab_env: Lab, *, username: str | None = None) -> dict:
    """The checker's JSON report of one account: the lab's only one, or ``username``'s."""
    scope = ["--username", username] if username else []
    document = json.loads(command(lab_env, "audit_transactions", *scope, "--format", "json"))
    (account,) = valid(document, kind="account-audits")
    return account


def lab_snapshot(lab_env: Lab) -> list[dict]:
    """Every account, ledger row, run and every scenario's rows of the lab's
    database, as dumpdata sees it."""
    return dumped(lab_env, "accounts", "labreport", *(config.label for config in _scenario_apps()))


def log_in_lab_user(server: Server, workdir: Path, *, username: str = LAB_USER) -> SessionCookies:
    return log_in(
        target=parse_target(server.url),
        username=username,
        password=LAB_PASSWORD,
        workdir=workdir,
        form=LAB_LOGIN,
    )


# --- The test database of this process ---------------------------------------------------------


def database_snapshot() -> dict[str, list[dict]]:
    """Every user (passwords included), account, ledger row, run, recorded
    request and every scenario's rows of the test database.

    What a refused operation must leave alone: ``assert database_snapshot() == before``.
    """
    return {
        model._meta.label: list(model.objects.order_by("pk").values())
        for model in (
            User,
            Account,
            Transaction,
            Run,
            RecordedRequest,
            *(model for config in _scenario_apps() for model in config.get_models()),
        )
    }


def _scenario_apps() -> list:
    return [config for config in apps.get_app_configs() if config.name.startswith("scenarios.")]


def strategy_params(strategies=tuple(Strategy)) -> list:
    """One ``pytest.param`` per strategy, each with its own ``django_db`` mark.

    ``serializable`` opens ``transaction.atomic(durable=True)`` and sets the isolation level as
    its first statement, so it cannot run inside the transaction a default test is wrapped in.
    """
    return [
        pytest.param(
            strategy,
            marks=pytest.mark.django_db(transaction=strategy is Strategy.SERIALIZABLE),
            id=strategy.value,
        )
        for strategy in strategies
    ]


SAFE_STRATEGY_PARAMS = strategy_params(SAFE_STRATEGIES)
ALL_STRATEGY_PARAMS = strategy_params()
