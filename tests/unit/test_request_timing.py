"""The server's stamps on a lab run's requests: arrived, read, wrote, answered (X-Lab-Run)."""

import itertools
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.urls import reverse

from accounts.models import Transaction
from labreport import middleware
from labreport.middleware import BAD_RUN_TOKEN, StatementMarks
from labreport.models import RecordedRequest
from tests.helpers import ALL_STRATEGY_PARAMS, STARTED_AT

URL = reverse("withdraw")
TOKEN = "run-token-1234"


@pytest.fixture
def logged_in(client, account):
    client.force_login(account.user)
    return client


def stamp(client, *, method: str = "post", strategy: str = "naive", token: str | None = TOKEN, **form):
    headers = {} if token is None else {"X-Lab-Run": token}
    return getattr(client, method)(f"{URL}?strategy={strategy}", form, headers=headers)


@pytest.mark.parametrize("strategy", ALL_STRATEGY_PARAMS)
def test_a_withdrawal_is_stamped_in_order_with_its_read_and_write(logged_in, account, strategy):
    assert stamp(logged_in, strategy=strategy).status_code == 200

    (recorded,) = RecordedRequest.objects.all()
    (row,) = Transaction.objects.all()
    assert (recorded.run_token, recorded.user_id, recorded.status, recorded.method, recorded.path) == (
        TOKEN,
        account.user_id,
        200,
        "POST",
        URL,
    )
    # The arrival is the very stamp the ledger row carries: that is how a run finds its rows.
    assert recorded.arrived_at == row.request_started_at
    assert recorded.arrived_at <= recorded.read_at <= recorded.written_at <= recorded.answered_at
    assert recorded.worker > 0
    # Filled in only when splatter files the run.
    assert (recorded.run, recorded.ledger_id, recorded.balance_before) == (None, None, None)


@pytest.mark.parametrize("strategy", ALL_STRATEGY_PARAMS)
def test_a_refused_withdrawal_is_stamped_with_its_read_and_no_write(logged_in, account, strategy):
    # Below the minimum: naive too refuses (it lets a balance only one withdrawal below it).
    account.minimum, account.current = 5, 4
    account.save()

    assert stamp(logged_in, strategy=strategy).status_code == 409

    (recorded,) = RecordedRequest.objects.all()
    assert recorded.status == 409
    assert recorded.arrived_at <= recorded.read_at <= recorded.answered_at
    assert recorded.written_at is None


@pytest.mark.django_db
def test_a_balance_read_is_stamped_with_its_read(logged_in):
    assert stamp(logged_in, method="get").status_code == 200

    (recorded,) = RecordedRequest.objects.all()
    assert (recorded.method, recorded.status, recorded.written_at) == ("GET", 200, None)
    assert recorded.arrived_at <= recorded.read_at <= recorded.answered_at


@pytest.mark.django_db
def test_nothing_is_recorded_without_the_header(logged_in):
    assert stamp(logged_in, token=None).status_code == 200

    assert not RecordedRequest.objects.exists()
    assert Transaction.objects.count() == 1


@pytest.mark.django_db
def test_an_anonymous_request_is_answered_and_not_recorded(client, account, database_unchanged):
    with database_unchanged():
        assert stamp(client).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["short", "x" * 65, "has space 12", "semi;colon12", "ünïcode-token"])
def test_a_malformed_token_is_refused_with_a_reason_and_changes_nothing(logged_in, token, database_unchanged):
    with database_unchanged():
        response = stamp(logged_in, token=token.encode().decode("latin-1"))

    assert (response.status_code, response.content.decode()) == (400, BAD_RUN_TOKEN)


class _Clock:
    """timezone.now() answering 1, 2, 3 ... seconds after STARTED_AT, one tick per call: the marks
    read the clock once per statement on the account's table, so the n-th of those is second n."""

    def __init__(self):
        self.ticks = itertools.count(1)

    def __call__(self):
        return STARTED_AT + timedelta(seconds=next(self.ticks))


def _run(statements: list[str], monkeypatch, *, vendor: str = "postgresql") -> StatementMarks:
    """Each statement through the wrapper, as Django sends it on a connection to ``vendor``."""
    monkeypatch.setattr(middleware.timezone, "now", _Clock())
    marks = StatementMarks(table="accounts_account")
    for sql in statements:
        marks(lambda *args: None, sql, (), False, {"connection": SimpleNamespace(vendor=vendor)})
    return marks


def _at(second: int | None):
    return None if second is None else STARTED_AT + timedelta(seconds=second)


@pytest.mark.parametrize(
    ("statements", "read", "written", "vendor"),
    [
        # The blog's naive: load the account, save() it, then the ledger row.
        (
            [
                'SELECT * FROM "accounts_account" WHERE user_id = 1',
                'UPDATE "accounts_account" SET current = 9',
                'INSERT INTO "accounts_transaction" VALUES (1)',
            ],
            1,
            2,
            "sqlite",
        ),
        # optimistic, retried: the read that counts is the one before the write that happened.
        (
            [
                "SELECT current FROM accounts_account",
                "UPDATE accounts_account SET version = 2 WHERE version = 1",
                "SELECT current FROM accounts_account",
                "UPDATE accounts_account SET version = 3 WHERE version = 2",
            ],
            3,
            4,
            "postgresql",
        ),
        # A conditional UPDATE reads as it writes; a read-back after it does not move the read.
        (
            ["UPDATE `accounts_account` SET current = current - 1", "SELECT current FROM `accounts_account`"],
            1,
            1,
            "mysql",
        ),
        # PostgreSQL's one statement for the write and its ledger row.
        (
            [
                "  WITH debited AS (UPDATE accounts_account SET current = current - 1 RETURNING current) "
                "INSERT INTO accounts_transaction (balance) SELECT current FROM debited"
            ],
            1,
            1,
            "postgresql",
        ),
        # A refusal: a read and no write; statements on other tables are not the account's.
        (
            ["SELECT * FROM django_session", "SELECT * FROM accounts_account", "SELECT * FROM auth_user"],
            1,
            None,
            "sqlite",
        ),
    ],
    ids=["naive", "optimistic-retried", "mariadb-atomic-update", "postgresql-one-statement", "refused"],
)
def test_statement_marks(statements, read, written, vendor, monkeypatch):
    marks = _run(statements, monkeypatch, vendor=vendor)

    assert marks.marks(wrote=True) == (_at(read), _at(written))


def test_a_refused_answer_keeps_the_read_and_drops_the_write_it_tried(monkeypatch):
    # atomic_update refused: its conditional UPDATE matched no row, then it read why.
    marks = _run(
        ["UPDATE accounts_account SET current = current - 1", "SELECT * FROM accounts_account"], monkeypatch
    )

    assert marks.marks(wrote=False) == (_at(1), None)
