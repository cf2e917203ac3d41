"""The withdraw path does no avoidable work: no session write per request, persistent
connections, and nothing read before the strategy but the session and the user, as a trivial
authenticated GET reads them (tests/unit/test_statement_budgets.py pins every statement)."""

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from accounts.withdrawals import Strategy

PASSWORD = "correct horse battery staple"


@pytest.fixture
def client(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = User.objects.create_user(username="alice", password=PASSWORD)
    Account.objects.create(user=user, opening=1_000, current=1_000)
    client = Client(enforce_csrf_checks=True, HTTP_HOST="127.0.0.1")
    client.get("/auth/login/")
    client.post(
        "/auth/login/",
        {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
    )
    return client


def statements(client, method: str, path: str, **data) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        if method == "GET":
            response = client.get(path)
        else:
            response = client.post(path, data, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert response.status_code == 200, response.content
    return [query["sql"] for query in captured.captured_queries]


def test_the_balance_costs_three_reads(client):
    sql = statements(client, "GET", "/accounts/withdraw/")

    assert len(sql) == 3  # session, user, account
    assert all(statement.startswith("SELECT") for statement in sql)


# serializable opens a durable transaction, which the test's own transaction forbids.
@pytest.mark.parametrize(
    "strategy", [Strategy.NAIVE, Strategy.ATOMIC_UPDATE, Strategy.LOCKING, Strategy.OPTIMISTIC]
)
def test_a_withdrawal_reads_what_the_balance_reads_then_only_its_strategy(client, strategy):
    get = statements(client, "GET", "/accounts/withdraw/")

    post = statements(client, "POST", f"/accounts/withdraw/?strategy={strategy}", amount="1")

    # The session and the user, as the GET reads them; the account is the strategy's to find.
    assert [s.split(" WHERE ")[0] for s in post[:2]] == [s.split(" WHERE ")[0] for s in get[:2]]
    assert ["django_session" in get[0], "auth_user" in get[1]] == [True, True]
    assert not any("django_session" in statement for statement in post[2:])  # no session write


def test_connections_persist_and_recover_by_themselves():
    database = settings.DATABASES["default"]

    assert database["CONN_MAX_AGE"] > 0
    assert database["CONN_HEALTH_CHECKS"] is True
    assert settings.SESSION_SAVE_EVERY_REQUEST is False
