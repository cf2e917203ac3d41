"""The floor (bench/floor/app.py) called in-process on the test database, through its own
connection: it must do the withdrawal Django's atomic_update does, and refuse what Django refuses."""

import io
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import Account, Transaction
from bench.floor.app import WITHDRAW_PATH, Floor, open_database
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def database_url() -> str:
    """The test database as a DATABASE_URL, so the floor opens a connection of its own to it."""
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{database['NAME']}"
    scheme = {"postgresql": "postgres", "mysql": "mysql"}[connection.vendor]
    credentials = quote(database["USER"] or "", safe="") + (
        f":{quote(database['PASSWORD'], safe='')}" if database["PASSWORD"] else ""
    )
    port = f":{database['PORT']}" if database["PORT"] else ""
    return f"{scheme}://{credentials}@{database['HOST'] or '127.0.0.1'}{port}/{database['NAME']}"


@pytest.fixture
def floor() -> Iterator[Floor]:
    floor = Floor(database=open_database(database_url()), secret_key=settings.SECRET_KEY)
    try:
        yield floor
    finally:
        floor.database.close()


def logged_in(account: Account) -> str:
    """A session cookie header for the account's user, from Django's own login."""
    client = Client()
    client.login(username=account.user.username, password=PASSWORD)
    return f"sessionid={client.cookies['sessionid'].value}"


def call(floor: Floor, *, method: str, cookies: str = "", body: bytes = b"") -> tuple[str, str]:
    answered = {}
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": WITHDRAW_PATH,
        "QUERY_STRING": "strategy=atomic_update",
        "HTTP_COOKIE": cookies,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    chunks = floor(environ, lambda status, headers: answered.update(status=status))
    return answered["status"], b"".join(chunks).decode()


def test_withdrawal_debits_and_writes_its_ledger_row(floor, account):
    before = timezone.now()

    answer = call(floor, method="POST", cookies=logged_in(account), body=b"amount=7")

    assert answer == ("200 OK", "993")
    account.refresh_from_db()
    assert account.current == 993
    row = Transaction.objects.get(holder=account)
    assert (row.amount, row.balance_before, row.balance, row.strategy) == (7, 1000, 993, "atomic_update")
    assert before - timedelta(seconds=1) <= row.request_started_at <= row.created_at <= timezone.now()


def test_get_answers_the_balance(floor, account, database_unchanged):
    cookies = logged_in(account)
    with database_unchanged():
        assert call(floor, method="GET", cookies=cookies) == ("200 OK", "1000")


def test_refused_withdrawal_changes_nothing(floor, make_account, database_unchanged):
    poor = make_account(opening=5, minimum=0)
    cookies = logged_in(poor)
    with database_unchanged():
        assert call(floor, method="POST", cookies=cookies, body=b"amount=6")[0] == "409 Conflict"


@pytest.mark.parametrize(
    "tamper",
    [lambda cookies: "", lambda cookies: cookies[:-1] + ("a" if cookies[-1] != "a" else "b")],
    ids=["no session", "unknown session"],
)
def test_not_logged_in_is_forbidden(floor, account, database_unchanged, tamper):
    cookies = tamper(logged_in(account))
    with database_unchanged():
        assert call(floor, method="POST", cookies=cookies)[0] == "403 Forbidden"


def test_forged_session_data_is_forbidden(floor, account, database_unchanged):
    cookies = logged_in(account)
    session = Session.objects.get()
    data, _, signature = session.session_data.rpartition(":")
    Session.objects.filter(pk=session.pk).update(session_data=f"{data}:{signature[::-1]}")
    with database_unchanged():
        assert call(floor, method="POST", cookies=cookies)[0] == "403 Forbidden"


def test_inactive_user_is_forbidden(floor, account, database_unchanged):
    cookies = logged_in(account)
    account.user.is_active = False
    account.user.save()
    with database_unchanged():
        assert call(floor, method="GET", cookies=cookies)[0] == "403 Forbidden"


def test_expired_session_is_forbidden(floor, account, database_unchanged):
    cookies = logged_in(account)
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    with database_unchanged():
        assert call(floor, method="GET", cookies=cookies)[0] == "403 Forbidden"
