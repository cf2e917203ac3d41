"""The race window at the SQL level: where a request is held (park points), on which resource,
and which requests the server holds, with no hook in the code under test."""

import time

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.audit import audit_account
from accounts.models import Account
from accounts.withdrawals import Strategy, withdraw
from labreport.models import RecordedRequest
from racelab.racewindow import barrier as race_window
from racelab.racewindow import park_points
from racelab.racewindow.park_points import ParkPoint
from racelab.racewindow.statements import holding
from tests.concurrency import run_concurrently

JOIN_SECONDS = 60
ACCOUNT_TABLE = Account._meta.db_table


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("accounts_account", (ParkPoint("accounts_account"),)),
        ("accounts_account:write", (ParkPoint("accounts_account", "write"),)),
        ("vouchers_usage:any:3", (ParkPoint("vouchers_usage", "any", 3),)),
        (" a:read:2 , b ", (ParkPoint("a", "read", 2), ParkPoint("b"))),
    ],
)
def test_park_points_are_parsed(value, expected):
    assert park_points.parse(value) == expected


@pytest.mark.parametrize(
    "value", ["", "a:sometimes", "a:read:x", "a:read:1:2", "a b", "a:read:0", "a:read:1001", "a;drop:read"]
)
def test_nonsense_park_points_are_refused_with_the_expected_form(value):
    with pytest.raises(ValueError, match=r"park point|occurrence"):
        park_points.parse(value)


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ('SELECT "accounts_account"."id" FROM "accounts_account"', "read"),
        ("  select current from accounts_account for update", "read"),
        ("UPDATE accounts_account SET current = current - 1", "write"),
        ("INSERT INTO accounts_transaction SELECT 1", "write"),
        ("WITH debited AS (UPDATE accounts_account SET current = 1 RETURNING id) INSERT INTO t", "write"),
        ("WITH recent AS (SELECT 1) SELECT * FROM recent", "read"),
        ("WITH mine AS (SELECT id FROM accounts_account FOR UPDATE) SELECT * FROM mine", "read"),
        (
            "START TRANSACTION;\n UPDATE accounts_account SET current = 1;\nINSERT INTO t SELECT 1;\nCOMMIT",
            "write",
        ),
        ("start  transaction; SELECT current FROM accounts_account; COMMIT", "read"),
    ],
)
def test_statement_kinds(sql, kind):
    assert park_points.statement_kind(sql) == kind


def test_a_park_point_names_a_whole_table_not_a_prefix():
    point = ParkPoint("accounts_account")
    assert point.matches(sql='SELECT 1 FROM "accounts_account" WHERE id = 1', kind="read")
    assert not point.matches(sql="SELECT 1 FROM accounts_accounts_archive", kind="read")
    assert not point.matches(sql='SELECT 1 FROM "accounts_account"', kind="write")
    assert ParkPoint("accounts_account", "any").matches(sql="UPDATE accounts_account SET x = 1", kind="write")


@pytest.mark.parametrize(
    ("sql", "dialect", "tables"),
    [
        # Django's own statements, placeholders included, in each dialect.
        ('SELECT "a"."id" FROM "accounts_account" "a" WHERE "a"."user_id" = %s LIMIT 21', "postgres",
         {"accounts_account"}),
        ("SELECT `x` FROM `counter_counter` WHERE `name` = %s LIMIT 21 FOR UPDATE", "mysql",
         {"counter_counter"}),
        ('INSERT INTO "shop_order" ("item") VALUES (%s) RETURNING "shop_order"."id"', "sqlite",
         {"shop_order"}),
        # MariaDB's batch names every table in it.
        ("START TRANSACTION; UPDATE `accounts_account` SET `current` = `current` - %s WHERE `id` = %s; "
         "INSERT INTO `accounts_transaction` (`amount`) VALUES (%s); COMMIT", "mysql",
         {"accounts_account", "accounts_transaction"}),
        # A column, an alias, a CTE's name and a string literal are not tables.
        ("SELECT accounts_account, 'accounts_account' AS accounts_account FROM other", "postgres", {"other"}),
        ('WITH accounts_account AS (UPDATE "wallet" SET "n" = 1 RETURNING "n") '
         "SELECT * FROM accounts_account", "postgres", {"wallet"}),
        # What sqlglot keeps as an opaque command names its identifiers: more, never fewer.
        ("REPLACE INTO `shop_cart` (`item`) VALUES (%s)", "mysql", {"shop_cart", "item"}),
    ],
)  # fmt: skip
def test_statement_tables_are_what_the_sql_parser_finds(sql, dialect, tables):
    assert park_points.statement_tables(sql, dialect=dialect) == tables


def read_account(account_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT current FROM {ACCOUNT_TABLE} WHERE id = %s", [account_id])
        cursor.fetchone()


@pytest.mark.django_db(transaction=True)
def test_a_request_is_held_once_at_the_chosen_occurrence(make_account):
    account = make_account()
    # One party: the barrier lets each arrival straight through, and counts it.
    with race_window.armed(parties=1, at=f"{ACCOUNT_TABLE}:read:2") as barrier:
        with holding(window=barrier.window) as statement_hold:
            read_account(account.pk)
            assert statement_hold.passage is None
            read_account(account.pk)
            assert statement_hold.passage is not None
            read_account(account.pk)
        assert barrier.stats().held == 1


@pytest.mark.django_db(transaction=True)
def test_a_window_armed_elsewhere_holds_where_it_says_not_the_default(make_account):
    account = make_account()
    # Held at the first write: the naive withdrawal's save(), not its read.
    with race_window.armed(parties=1, at=f"{ACCOUNT_TABLE}:write") as barrier:
        with holding(window=barrier.window, default_at="auth_user") as statement_hold:
            read_account(account.pk)
            assert statement_hold.passage is None
            withdraw(user=account.user, amount=1, strategy=Strategy.NAIVE, request_started_at=timezone.now())
        assert statement_hold.passage is not None and barrier.stats().held == 1


@pytest.mark.django_db(transaction=True)
def test_a_read_back_after_a_write_is_not_held(make_account):
    # A read of the balance after a conditional UPDATE (a read-back) decides nothing.
    account = make_account()
    with race_window.armed(parties=1) as barrier:
        with holding(window=barrier.window) as statement_hold, connection.cursor() as cursor:
            cursor.execute(f"UPDATE {ACCOUNT_TABLE} SET current = current - 1 WHERE id = %s", [account.pk])
            read_account(account.pk)
        assert statement_hold.passage is None and barrier.stats().held == 0


def naive_withdrawals(accounts: list[Account], *, window: race_window.RaceWindow) -> list:
    """One naive withdrawal of 1 from each account, all at once, held in ``window``."""

    def withdrawal_from(account: Account):
        def one() -> object:
            with holding(window=window):
                return withdraw(
                    user=account.user, amount=1, strategy=Strategy.NAIVE, request_started_at=timezone.now()
                )

        return one

    return run_concurrently([withdrawal_from(account) for account in accounts])


@pytest.mark.django_db(transaction=True)
def test_writes_to_different_rows_share_the_tables_window(make_account):
    # A write's parameters carry the values written, so a write point races the whole table:
    # two naive withdrawals from two accounts fill one window of 2, with no timeout.
    accounts = [make_account(username=name) for name in ("alice", "bob")]

    with race_window.armed(parties=2, timeout=5, at=f"{ACCOUNT_TABLE}:write") as barrier:
        results = naive_withdrawals(accounts, window=barrier.window)
        stats = barrier.stats()

    assert not any(isinstance(result, Exception) for result in results), results
    assert (stats.held, stats.windows, stats.timeouts) == (2, 1, 0)


@pytest.mark.django_db(transaction=True)
def test_requests_on_different_rows_never_share_a_window(make_account):
    # Two accounts, two naive withdrawals on each, all four at once, a window of 2: each account
    # fills its own window (and loses one), none waits for the timeout.
    accounts = [make_account(username=name) for name in ("alice", "bob")]

    with race_window.armed(parties=2, timeout=5) as barrier:
        results = naive_withdrawals(accounts * 2, window=barrier.window)
        stats = barrier.stats()

    assert not any(isinstance(result, Exception) for result in results), results
    assert (stats.held, stats.windows, stats.timeouts) == (4, 2, 0)
    for account in accounts:
        assert audit_account(account=account).lost_withdrawals == 1


@pytest.fixture
def logged_in(client, make_account):
    account = make_account()
    client.force_login(account.user)
    return client


@pytest.mark.django_db(transaction=True)
def test_the_server_holds_state_changing_requests_only(logged_in):
    with race_window.armed(parties=1) as barrier:
        assert logged_in.get(reverse("withdraw")).status_code == 200
        assert barrier.stats().held == 0
        assert logged_in.post(f"{reverse('withdraw')}?strategy=naive", {"amount": "1"}).status_code == 200
        assert barrier.stats().held == 1


@pytest.mark.django_db(transaction=True)
def test_a_recorded_read_is_stamped_when_it_returned_not_when_the_barrier_let_it_go(logged_in):
    # A lone withdrawal in a window of 2 waits out the timeout after its read, before its write.
    timeout = 0.3
    with race_window.armed(parties=2, timeout=timeout):
        started = time.monotonic()
        response = logged_in.post(
            f"{reverse('withdraw')}?strategy=naive", {"amount": "1"}, headers={"X-Lab-Run": "held-run-1"}
        )
        waited = time.monotonic() - started

    assert response.status_code == 200 and waited >= timeout
    (recorded,) = RecordedRequest.objects.all()
    assert (recorded.read_at - recorded.arrived_at).total_seconds() < timeout
    assert (recorded.written_at - recorded.read_at).total_seconds() >= timeout


@pytest.mark.django_db
def test_with_no_park_point_named_anywhere_nothing_is_held(settings):
    settings.RACE_WINDOW_AT = ""
    with holding(window=race_window.RaceWindow(parties=2, timeout=0.1)) as statement_hold:
        # No execute wrapper installed: no statement of this block can be held.
        assert statement_hold is None
        assert connection.execute_wrappers == []
