"""The lab runs kept before the one run row (labreport.LabRun) move into accounts.Run with their
recorded requests, and back: the migrations run on a real database."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("accounts", "0002_ledger_indexes_cover_ids"), ("labreport", "0002_audit_schema")]
AFTER = [("accounts", "0003_one_run_row"), ("labreport", "0005_drop_lab_runs")]
TOKEN = "t" * 12
AUDIT = {"schema": "account-audit/1"}


def migrated_to(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


def add_run(old, *, account, started, kept: bool, counted: bool) -> None:
    """One run as the old code left it: the checker's ClientRun (until the account's reset) and
    the report page's LabRun with its recorded request."""
    figures = {
        "driver": "burst",
        "strategy": "naive",
        "amount": 1,
        "requests": 3,
        "ok": 2,
        "indeterminate": 0,
    }
    finished = started + timedelta(seconds=1)
    if counted:
        old.get_model("accounts", "ClientRun").objects.create(
            account_id=account.pk, failed=1, started_at=started, finished_at=finished, **figures
        )
    if kept:
        lab_run = old.get_model("labreport", "LabRun").objects.create(
            token=TOKEN, account_id=account.pk, concurrency=3, refused=1, race_window=True,
            requests_per_second=99.5, audit=AUDIT, lost=1, verdict="ANOMALIES: lost withdrawals",
            started_at=started, finished_at=finished, **figures,
        )  # fmt: skip
        old.get_model("labreport", "RecordedRequest").objects.create(
            run_token=TOKEN, user_id=account.user_id, run_id=lab_run.pk, worker=1, method="POST",
            path="/accounts/withdraw/", status=200, arrived_at=started, answered_at=started,
        )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_lab_runs_become_runs_the_counted_ones_one_row_and_back():
    old = migrated_to(BEFORE)
    user = old.get_model("auth", "User").objects.create(username="alice")
    account = old.get_model("accounts", "Account").objects.create(user_id=user.pk, opening=10, current=8)
    earlier, latest, unkept = (timezone.now() + timedelta(seconds=10 * n) for n in range(3))
    add_run(old, account=account, started=earlier, kept=True, counted=False)  # before the last reset
    add_run(old, account=account, started=latest, kept=True, counted=True)  # since it
    add_run(old, account=account, started=unkept, kept=False, counted=True)  # fired without recording

    new = migrated_to(AFTER)
    runs = list(new.get_model("accounts", "Run").objects.order_by("started_at"))
    assert [(run.since_reset, run.audit is not None) for run in runs] == [
        (False, True),
        (True, True),
        (True, False),
    ]
    for run in runs[:2]:
        assert (run.token, run.refused, run.concurrency, run.lost) == (TOKEN, 1, 3, 1)
        assert (run.race_window, run.requests_per_second, run.audit) == (True, 99.5, AUDIT)
    requests = new.get_model("labreport", "RecordedRequest").objects.order_by("arrived_at")
    assert [request.run_id for request in requests] == [runs[0].pk, runs[1].pk]

    old = migrated_to(BEFORE)
    assert old.get_model("accounts", "ClientRun").objects.count() == 2
    lab_runs = list(old.get_model("labreport", "LabRun").objects.order_by("started_at"))
    assert [(lab_run.started_at, lab_run.audit) for lab_run in lab_runs] == [
        (earlier, AUDIT),
        (latest, AUDIT),
    ]
    requests = old.get_model("labreport", "RecordedRequest").objects.order_by("arrived_at")
    assert [request.run_id for request in requests] == [lab_run.pk for lab_run in lab_runs]
    migrated_to(AFTER)
