"""The statement budget: every statement a request sends, in order, per strategy and database.

Counted as the database receives them (bench/statements.py), so the session and user look-ups,
BEGIN and COMMIT, MariaDB's autocommit switches and the health check count too; a MariaDB batch
(several statements in one query) is one entry that lists them. A new statement, a SAVEPOINT
from a nested atomic block or a look-up done twice fails here; docs/benchmarks.md shows the same
table.
"""

import pytest
from django.db import connection, transaction
from django.test import Client

from bench.statements import describe, request_statements, statements_sent

SESSION = ["SELECT django_session", "SELECT auth_user"]
HEALTH_CHECK = {"sqlite": [], "postgresql": ["SELECT 1"], "mysql": ["ping"]}
BEGIN = {"sqlite": ["BEGIN IMMEDIATE"], "postgresql": ["BEGIN"], "mysql": ["autocommit(False)"]}
BEGIN_SERIALIZABLE = {
    "sqlite": ["BEGIN IMMEDIATE"],
    "postgresql": ["BEGIN ISOLATION LEVEL SERIALIZABLE"],
    "mysql": ["autocommit(False)", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"],
}
COMMIT = {"sqlite": ["COMMIT"], "postgresql": ["COMMIT"], "mysql": ["commit", "autocommit(True)"]}
READ = ["SELECT accounts_account"]
DEBIT = ["UPDATE accounts_account"]
LEDGER_ROW = ["INSERT accounts_transaction"]
# PostgreSQL writes a balance and its ledger row as one statement, atomic by itself: the UPDATE
# in a WITH clause, the INSERT taking its row.
ONE_STATEMENT = ["UPDATE accounts_account + INSERT accounts_transaction"]
# MariaDB sends the write and its ledger row as one batch: two statements, one round trip.
ONE_BATCH = ["UPDATE accounts_account + INSERT accounts_transaction"]
WRITE = {"sqlite": DEBIT + LEDGER_ROW, "postgresql": ONE_STATEMENT, "mysql": ONE_BATCH}
# A write outside any transaction needs one of its own, but where it is one statement. MariaDB
# opens and commits it in the same batch, and stays in autocommit mode: no SET autocommit.
WRITE_ALONE = {
    "sqlite": BEGIN["sqlite"] + WRITE["sqlite"] + COMMIT["sqlite"],
    "postgresql": ONE_STATEMENT,
    "mysql": ["START TRANSACTION + UPDATE accounts_account + INSERT accounts_transaction + COMMIT"],
}


def expected(case: str, vendor: str) -> list[str]:
    after_session = {
        "GET (balance)": READ,
        "naive": READ + DEBIT + LEDGER_ROW,
        "atomic_update": WRITE_ALONE[vendor],
        "locking": BEGIN[vendor] + READ + WRITE[vendor] + COMMIT[vendor],
        "optimistic": READ + WRITE_ALONE[vendor],
        "serializable": BEGIN_SERIALIZABLE[vendor] + READ + WRITE[vendor] + COMMIT[vendor],
    }[case]
    return HEALTH_CHECK[vendor] + SESSION + after_session


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "case", ["GET (balance)", "naive", "atomic_update", "locking", "optimistic", "serializable"]
)
def test_each_request_sends_exactly_its_budgeted_statements(case, account):
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(account.user)
    # Twice: the first request of a connection may prepare statements the second reuses.
    request_statements(client, case, connection=connection)
    sent = request_statements(client, case, connection=connection)
    assert sent == expected(case, connection.vendor)
    if case != "GET (balance)":
        account.refresh_from_db()
        assert (account.current, account.transactions.count()) == (account.opening - 2, 2)


@pytest.mark.django_db(transaction=True)
def test_the_counter_sees_what_djangos_query_log_misses():
    """The budget is only as good as the counting: a transaction's BEGIN and COMMIT, which Django
    does not log on PostgreSQL and MariaDB, must show."""
    connection.ensure_connection()
    with statements_sent(connection) as sent, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert [describe(statement) for statement in sent] == (
        BEGIN[connection.vendor] + ["SELECT 1"] + COMMIT[connection.vendor]
    )
