import contextlib
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import withdrawals
from accounts.audit import audit_account
from accounts.models import Account, Transaction
from accounts.withdrawals import (
    GAVE_UP,
    MAX_WITHDRAWAL_AMOUNT,
    OPTIMISTIC_MAX_ATTEMPTS,
    SAFE_STRATEGIES,
    SERIALIZABLE_MAX_ATTEMPTS,
    InsufficientFunds,
    Strategy,
    Withdrawal,
    WithdrawalConflict,
    withdraw,
)
from racelab.racewindow.park_points import WRITE, statement_kind
from races.refusals import NotFound, Refused
from tests.helpers import ALL_STRATEGY_PARAMS, PASSWORD, SAFE_STRATEGY_PARAMS, STARTED_AT, database_snapshot

THREADS = 8
WITHDRAWALS_PER_THREAD = 10
ATTEMPTS = THREADS * WITHDRAWALS_PER_THREAD
# Less than the threads ask for, so the race runs into the minimum as well.
CONCURRENT_OPENING = ATTEMPTS * 3 // 4
JOIN_TIMEOUT_SECONDS = 120


def test_strategy_names_and_the_safe_ones():
    assert [s.value for s in Strategy] == ["naive", "atomic_update", "locking", "optimistic", "serializable"]
    assert Strategy.NAIVE not in SAFE_STRATEGIES
    assert set(SAFE_STRATEGIES) == set(Strategy) - {Strategy.NAIVE}
    assert issubclass(InsufficientFunds, Refused)
    assert issubclass(WithdrawalConflict, Refused)


@pytest.mark.parametrize("strategy", ALL_STRATEGY_PARAMS)
def test_each_strategy_writes_the_balance_and_its_ledger_row(make_account, strategy):
    account = make_account(opening=1_000)

    result = withdraw(user=account.user, amount=7, strategy=strategy, request_started_at=STARTED_AT)

    assert result == Withdrawal(
        account_id=account.pk,
        amount=7,
        balance_before=1_000,
        balance_after=993,
        strategy=strategy,
        attempts=1,
    )
    account.refresh_from_db()
    assert account.current == 993
    assert account.opening == 1_000
    (row,) = Transaction.objects.all()
    assert (row.holder_id, row.amount, row.balance_before, row.balance, row.strategy) == (
        account.pk,
        7,
        1_000,
        993,
        strategy.value,
    )
    assert row.request_started_at == STARTED_AT


@pytest.mark.parametrize("strategy", ALL_STRATEGY_PARAMS)
def test_sequential_withdrawals_chain_their_ledger_rows(make_account, strategy):
    account = make_account(opening=100)

    for amount in (1, 2, 3):
        withdraw(user=account.user, amount=amount, strategy=strategy, request_started_at=timezone.now())

    account.refresh_from_db()
    assert account.current == 94
    assert list(Transaction.objects.order_by("pk").values_list("amount", "balance_before", "balance")) == [
        (1, 100, 99),
        (2, 99, 97),
        (3, 97, 94),
    ]
    assert audit_account(account=account).verdict == "OK"


@pytest.mark.parametrize("strategy", SAFE_STRATEGY_PARAMS)
def test_safe_strategies_go_down_to_the_minimum_exactly(make_account, strategy):
    account = make_account(opening=50, minimum=20)

    result = withdraw(user=account.user, amount=30, strategy=strategy, request_started_at=STARTED_AT)

    assert result.balance_after == 20
    account.refresh_from_db()
    assert account.current == account.minimum


@pytest.mark.parametrize("strategy", SAFE_STRATEGY_PARAMS)
@pytest.mark.parametrize(("opening", "minimum", "amount"), [(50, 20, 31), (0, 0, 1), (5, 5, 1), (10, 0, 11)])
def test_safe_strategies_refuse_to_go_below_the_minimum(
    make_account, strategy, opening, minimum, amount, database_unchanged
):
    account = make_account(opening=opening, minimum=minimum)

    refusal = (
        f"Insufficient funds: account {account.pk} holds {opening}; withdrawing {amount} "
        f"would take it below its minimum of {minimum}."
    )
    with database_unchanged(), pytest.raises(InsufficientFunds, match=f"^{re.escape(refusal)}$"):
        withdraw(user=account.user, amount=amount, strategy=strategy, request_started_at=STARTED_AT)


@pytest.mark.parametrize("strategy", ALL_STRATEGY_PARAMS)
def test_each_strategy_withdraws_from_the_users_first_account_only(make_account, strategy):
    account = make_account(opening=1_000)
    second = Account.objects.create(user=account.user, opening=500, current=500)
    others = make_account(username="bob", opening=1_000)

    result = withdraw(user=account.user, amount=7, strategy=strategy, request_started_at=STARTED_AT)

    assert result.account_id == account.pk
    assert dict(Account.objects.values_list("pk", "current")) == {
        account.pk: 993,
        second.pk: 500,
        others.pk: 1_000,
    }
    assert list(Transaction.objects.values_list("holder_id", flat=True)) == [account.pk]


@pytest.mark.parametrize("strategy", ALL_STRATEGY_PARAMS)
def test_a_user_without_an_account_changes_nothing(make_account, strategy, database_unchanged):
    make_account(opening=1_000)
    stranger = User.objects.create_user(username="bob", password=PASSWORD)

    with database_unchanged(), pytest.raises(NotFound, match=f"User {stranger.pk} has no account."):
        withdraw(user=stranger, amount=1, strategy=strategy, request_started_at=STARTED_AT)


# Outside any test transaction, as a request runs: on PostgreSQL atomic_update's one statement
# fails whole, and would leave an enclosing transaction aborted, as any failed statement does.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("strategy", SAFE_STRATEGY_PARAMS)
def test_safe_strategies_roll_the_balance_back_when_the_ledger_row_fails(
    make_account, strategy, database_unchanged
):
    # A NULL request_started_at makes the ledger INSERT fail for real (NOT NULL).
    account = make_account(opening=1_000)

    # Each database names the column in its own words: SQLite "NOT NULL constraint failed: ...",
    # PostgreSQL 'null value in column "..."', MariaDB "Column '...' cannot be null".
    with database_unchanged(), pytest.raises(IntegrityError, match="request_started_at"):
        withdraw(user=account.user, amount=1, strategy=strategy, request_started_at=None)

    # Nothing is left open on the connection, and the next request's withdrawal goes through.
    assert (connection.get_autocommit(), connection.in_atomic_block) == (True, False)
    assert not _transaction_open_on_the_server()
    assert (
        withdraw(user=account.user, amount=1, strategy=strategy, request_started_at=STARTED_AT).balance_after
        == 999
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("strategy", SAFE_STRATEGY_PARAMS)
def test_a_refused_withdrawal_leaves_no_transaction_open(make_account, strategy, database_unchanged):
    account = make_account(opening=0)
    refusal = (
        f"Insufficient funds: account {account.pk} holds 0; withdrawing 1 would take it below its "
        "minimum of 0."
    )

    with database_unchanged(), pytest.raises(InsufficientFunds, match=f"^{re.escape(refusal)}$"):
        withdraw(user=account.user, amount=1, strategy=strategy, request_started_at=STARTED_AT)

    assert (connection.get_autocommit(), connection.in_atomic_block) == (True, False)
    assert not _transaction_open_on_the_server()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("strategy", [Strategy.ATOMIC_UPDATE, Strategy.OPTIMISTIC])
def test_what_wraps_the_write_sees_it_end_once_committed(make_account, strategy):
    """The race window and the lab report's marks wrap each statement: on PostgreSQL and MariaDB
    these writes are one exchange with the server, a statement or a batch, so when it returns the
    withdrawal is committed, every result read and the connection free for the next statement."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite writes the balance and the ledger row as two statements of one transaction")
    account = make_account(opening=1_000)
    open_after_writes = []

    def after_each_write(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if statement_kind(sql) == WRITE:
            open_after_writes.append(_transaction_open_on_the_server())
        return result

    with connection.execute_wrapper(after_each_write):
        withdraw(user=account.user, amount=1, strategy=strategy, request_started_at=STARTED_AT)

    assert open_after_writes == [False]
    assert Transaction.objects.filter(holder=account).count() == 1


def _transaction_open_on_the_server() -> bool:
    if connection.vendor == "mysql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@in_transaction")
            return bool(cursor.fetchone()[0])
    if connection.vendor == "postgresql":
        from psycopg import pq

        return connection.connection.info.transaction_status != pq.TransactionStatus.IDLE
    return connection.connection.in_transaction


@pytest.mark.parametrize("strategy", ALL_STRATEGY_PARAMS)
@pytest.mark.parametrize("amount", [0, -1, MAX_WITHDRAWAL_AMOUNT + 1])
def test_amount_out_of_range_is_a_value_error(make_account, strategy, amount, database_unchanged):
    account = make_account(opening=MAX_WITHDRAWAL_AMOUNT * 2)

    with database_unchanged(), pytest.raises(ValueError, match=f"not {amount}"):
        withdraw(user=account.user, amount=amount, strategy=strategy, request_started_at=STARTED_AT)


@pytest.mark.parametrize("strategy", ALL_STRATEGY_PARAMS)
def test_only_optimistic_bumps_the_version(make_account, strategy):
    account = make_account()

    withdraw(user=account.user, amount=1, strategy=strategy, request_started_at=STARTED_AT)
    withdraw(user=account.user, amount=1, strategy=strategy, request_started_at=STARTED_AT)

    account.refresh_from_db()
    assert account.version == (2 if strategy is Strategy.OPTIMISTIC else 0)


@pytest.mark.django_db
def test_naive_checks_the_balance_before_the_amount(make_account):
    # The blog's guard is `current >= minimum`: one more withdrawal passes it at the minimum.
    account = make_account(opening=1, minimum=0)

    withdraw(user=account.user, amount=1, strategy=Strategy.NAIVE, request_started_at=STARTED_AT)
    withdraw(user=account.user, amount=1, strategy=Strategy.NAIVE, request_started_at=STARTED_AT)
    refusal = (
        f"Insufficient funds: account {account.pk} holds -1; withdrawing 1 would take it below its "
        "minimum of 0."
    )
    with pytest.raises(InsufficientFunds, match=f"^{re.escape(refusal)}$"):
        withdraw(user=account.user, amount=1, strategy=Strategy.NAIVE, request_started_at=STARTED_AT)

    account.refresh_from_db()
    assert account.current == -1
    assert Transaction.objects.count() == 2


def run_threads(*, account_id: int, strategy: Strategy) -> Counter:
    """THREADS threads, released together by a barrier, each withdrawing 1 several times.

    Each thread reloads the account before every withdrawal, as a request would, and closes its
    own database connection. A thread still running after the join timeout fails the test.
    """
    barrier = threading.Barrier(THREADS)
    outcomes: Counter = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait(timeout=JOIN_TIMEOUT_SECONDS)
            for _ in range(WITHDRAWALS_PER_THREAD):
                account = Account.objects.get(pk=account_id)
                try:
                    withdraw(
                        user=account.user, amount=1, strategy=strategy, request_started_at=timezone.now()
                    )
                    outcome = "ok"
                except InsufficientFunds:
                    outcome = "insufficient"
                except WithdrawalConflict:
                    outcome = "conflict"
                with lock:
                    outcomes[outcome] += 1
        except BaseException as error:
            with lock:
                errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + JOIN_TIMEOUT_SECONDS
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = sum(thread.is_alive() for thread in threads)
    assert stuck == 0, f"{stuck} thread(s) still running after {JOIN_TIMEOUT_SECONDS} s: a deadlock?"
    assert errors == []
    assert sum(outcomes.values()) == ATTEMPTS
    return outcomes


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("strategy", SAFE_STRATEGIES, ids=str)
def test_safe_strategies_lose_nothing_and_never_overdraw_under_threads(make_account, strategy):
    account = make_account(opening=CONCURRENT_OPENING, minimum=0)

    outcomes = run_threads(account_id=account.pk, strategy=strategy)

    account.refresh_from_db()
    # Every unit of the balance withdrawn once, and every request after that refused for want of
    # funds. The retrying strategies give up on none: each refusal of an attempt takes a rival's
    # commit inside it, there are at most THREADS - 1 rivals, and the pauses between attempts
    # grow, so no request is refused the MAX_ATTEMPTS (20) times in a row that would end it.
    assert dict(outcomes) == {"ok": CONCURRENT_OPENING, "insufficient": ATTEMPTS - CONCURRENT_OPENING}
    assert account.current == account.minimum == 0
    assert Transaction.objects.filter(holder=account).count() == CONCURRENT_OPENING
    # Every success read a balance no other one read, and the balances chain without a gap.
    reads = sorted(Transaction.objects.values_list("balance_before", flat=True))
    assert reads == list(range(1, CONCURRENT_OPENING + 1))
    assert audit_account(account=account).verdict == "OK"


@pytest.mark.django_db(transaction=True)
def test_naive_under_threads_records_every_success_and_never_takes_more(make_account):
    # Whether naive loses updates here is chance (the end-to-end tests prove it does under ab);
    # what holds every time: each success wrote one row and the balance fell by at most that.
    account = make_account(opening=1_000, minimum=0)

    outcomes = run_threads(account_id=account.pk, strategy=Strategy.NAIVE)

    account.refresh_from_db()
    assert outcomes["ok"] == ATTEMPTS
    assert Transaction.objects.filter(holder=account).count() == ATTEMPTS
    assert 1_000 - ATTEMPTS <= account.current < 1_000


class Rival:
    """Another request that withdraws 1 after ours has read the balance and before it writes,
    every time.

    Installed with ``connection.execute_wrapper(rival)``, it runs before each write of the
    account table, after the read the write was decided on (a SELECT, or on PostgreSQL the row
    optimistic's failed write answered), where the race window holds a request. The rival is a
    real withdrawal (``strategy``) in a transaction of its own that commits before ours writes:
    on a thread with its own connection, except on SQLite, where our transaction holds the
    write lock from BEGIN (IMMEDIATE) so no other connection can write inside it; there the
    rival runs inside our transaction (in a savepoint, or as part of it), which leaves our
    write to see the same thing.
    """

    def __init__(self, *, account: Account, strategy: Strategy, times: int | None = None) -> None:
        self.account_id = account.pk
        self.strategy = strategy
        self.times = times
        self.withdrawals: list[Withdrawal] = []
        self._running = False

    def __call__(self, execute, sql, params, many, context):
        # Not during the rival's own statements.
        if not self._running and len(self.withdrawals) != self.times and _writes_the_account(sql):
            self._running = True
            try:
                if connection.vendor == "sqlite":
                    self._withdraw(self.account_id)
                else:
                    self._withdraw_on_another_connection(self.account_id)
            finally:
                self._running = False
        return execute(sql, params, many, context)

    def _withdraw(self, account_id: int) -> None:
        account = Account.objects.get(pk=account_id)
        self.withdrawals.append(
            withdraw(user=account.user, amount=1, strategy=self.strategy, request_started_at=timezone.now())
        )

    def _withdraw_on_another_connection(self, account_id: int) -> None:
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self._withdraw(account_id)
            except BaseException as error:
                errors.append(error)
            finally:
                connection.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(timeout=JOIN_TIMEOUT_SECONDS)
        assert not thread.is_alive(), "the rival withdrawal is stuck"
        assert errors == []


def recorded_pauses(monkeypatch) -> list[dict]:
    """The retry pauses a withdrawal asks for, recorded instead of slept."""
    pauses: list[dict] = []
    monkeypatch.setattr(withdrawals, "back_off", lambda **pause: pauses.append(pause))
    return pauses


def _writes_the_account(sql: str) -> bool:
    # As the race window tells a write: a MariaDB batch is the kind of its statement after
    # START TRANSACTION.
    statement = sql.upper().replace('"', "").replace("`", "")
    return statement_kind(sql) == WRITE and f"UPDATE {Account._meta.db_table.upper()}" in statement


def assert_only_the_rival_withdrew(account: Account, rival: Rival, *, attempts: int) -> None:
    """The refused withdrawal left nothing behind: every change is one of the rival's."""
    assert len(rival.withdrawals) == attempts  # one lost race per attempt
    account.refresh_from_db()
    assert account.current == account.opening - attempts
    rows = list(Transaction.objects.order_by("pk").values_list("strategy", "balance_before", "balance"))
    assert rows == [(rival.strategy.value, w.balance_before, w.balance_after) for w in rival.withdrawals]
    assert audit_account(account=account).verdict == "OK"


@pytest.mark.django_db(transaction=True)
def test_optimistic_gives_up_after_its_last_attempt_and_withdraws_nothing(make_account, monkeypatch, caplog):
    account = make_account(opening=1_000)
    # Another optimistic withdrawal bumps the version between our read and our write.
    rival = Rival(account=account, strategy=Strategy.OPTIMISTIC)
    pauses = recorded_pauses(monkeypatch)

    gave_up = (
        f"Conflict: account {account.pk} changed under {OPTIMISTIC_MAX_ATTEMPTS} attempts in a row; "
        "nothing was withdrawn, try again."
    )
    with (
        connection.execute_wrapper(rival),
        pytest.raises(WithdrawalConflict, match=f"^{re.escape(gave_up)}$") as conflict,
    ):
        withdraw(user=account.user, amount=5, strategy=Strategy.OPTIMISTIC, request_started_at=STARTED_AT)

    assert_logged_once(caplog, f"{GAVE_UP}: {conflict.value}")
    assert_only_the_rival_withdrew(account, rival, attempts=OPTIMISTIC_MAX_ATTEMPTS)
    account.refresh_from_db()
    assert account.version == OPTIMISTIC_MAX_ATTEMPTS
    # No pause before the first retry, which goes at once, nor after the last attempt.
    assert [pause["attempt"] for pause in pauses] == list(range(2, OPTIMISTIC_MAX_ATTEMPTS))
    assert all(pause["lasted"] > 0 for pause in pauses)


@pytest.mark.django_db(transaction=True)
def test_optimistic_retries_a_lost_race_at_once_from_the_row_as_it_is_now(make_account):
    account = make_account(opening=1_000)
    rival = Rival(account=account, strategy=Strategy.OPTIMISTIC, times=1)

    with connection.execute_wrapper(rival), CaptureQueriesContext(connection) as queries:
        withdrawal = withdraw(
            user=account.user, amount=5, strategy=Strategy.OPTIMISTIC, request_started_at=STARTED_AT
        )

    assert (withdrawal.attempts, withdrawal.balance_before, withdrawal.balance_after) == (2, 999, 994)
    reads = [query for query in queries if query["sql"].lstrip().upper().startswith("SELECT")]
    # PostgreSQL's failed write answered the row as it is now; MariaDB reads it again. (On
    # SQLite the rival's own statements run on our connection, so they count here too.)
    if connection.vendor != "sqlite":
        assert len(reads) == (1 if connection.vendor == "postgresql" else 2)
    account.refresh_from_db()
    assert (account.current, account.version) == (994, 2)
    assert audit_account(account=account).verdict == "OK"


@pytest.mark.django_db(transaction=True)
def test_a_conflict_is_answered_409_and_withdraws_nothing(client, make_account, monkeypatch):
    account = make_account(opening=1_000)
    recorded_pauses(monkeypatch)
    client.force_login(account.user)
    rival = Rival(account=account, strategy=Strategy.OPTIMISTIC)

    with connection.execute_wrapper(rival):
        response = client.post(f"{reverse('withdraw')}?strategy=optimistic", {"amount": "5"})

    assert response.status_code == 409
    assert response["Content-Type"] == "text/plain"
    assert response.content.decode().startswith(f"Conflict: account {account.pk} changed under ")
    assert_only_the_rival_withdrew(account, rival, attempts=OPTIMISTIC_MAX_ATTEMPTS)


@pytest.mark.django_db(transaction=True)
def test_serializable_gives_up_after_its_last_attempt_and_withdraws_nothing(
    make_account, monkeypatch, caplog
):
    account = make_account(opening=1_000)
    if connection.vendor == "postgresql":
        # A rival that commits an update of the row we read: PostgreSQL fails our UPDATE with
        # a real serialization failure (SQLSTATE 40001) on every attempt.
        rival = Rival(account=account, strategy=Strategy.ATOMIC_UPDATE)
        attempts = SERIALIZABLE_MAX_ATTEMPTS
    elif connection.vendor == "mysql":
        # Under SERIALIZABLE InnoDB share-locks what we read, so a rival's write would wait
        # for us; instead a reader holds a share lock of its own until we give up, and our
        # UPDATE times out waiting for it (a real error 1205) on every attempt. A second per
        # attempt is the shortest InnoDB waits: three attempts, not twenty.
        rival = None
        attempts = 3
        monkeypatch.setattr(withdrawals, "SERIALIZABLE_MAX_ATTEMPTS", attempts)
    else:
        pytest.skip("SQLite runs serializable withdrawals one at a time: none can fail to serialize")
    before = database_snapshot()
    pauses = recorded_pauses(monkeypatch)

    with contextlib.ExitStack() as stack:
        if rival is None:
            stack.enter_context(share_locked(account.pk))
            stack.enter_context(lock_wait_timeout(seconds=1))
        else:
            stack.enter_context(connection.execute_wrapper(rival))
        gave_up = (
            f"Conflict: the database refused to serialize a withdrawal from account {account.pk} "
            f"{attempts} times in a row; nothing was withdrawn, try again."
        )
        with pytest.raises(WithdrawalConflict, match=f"^{re.escape(gave_up)}$") as conflict:
            withdraw(
                user=account.user, amount=5, strategy=Strategy.SERIALIZABLE, request_started_at=STARTED_AT
            )

    assert_logged_once(caplog, f"{GAVE_UP}: {conflict.value}")
    if rival is None:
        assert database_snapshot() == before
    else:
        assert_only_the_rival_withdrew(account, rival, attempts=attempts)
    # The first retry goes at once, and there is no pause after the last attempt.
    assert [pause["attempt"] for pause in pauses] == list(range(2, attempts))


def assert_logged_once(caplog: pytest.LogCaptureFixture, message: str) -> None:
    """The server's log holds ``message`` once, as a warning of the withdrawal service."""
    assert [
        (record.name, record.levelname, record.getMessage())
        for record in caplog.records
        if record.name == "accounts.withdrawals" and record.levelname != "INFO"
    ] == [("accounts.withdrawals", "WARNING", message)]


@contextlib.contextmanager
def lock_wait_timeout(*, seconds: int) -> Iterator[None]:
    """How long this connection waits for a row lock on MariaDB, for the block only."""
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION innodb_lock_wait_timeout = %s", [seconds])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = DEFAULT")


@contextlib.contextmanager
def share_locked(account_id: int) -> Iterator[None]:
    """Another connection holds a share lock on the account's row (MariaDB) until the block ends."""
    locked, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"SELECT id FROM {Account._meta.db_table} WHERE id = %s LOCK IN SHARE MODE",
                        [account_id],
                    )
                locked.set()
                release.wait(timeout=JOIN_TIMEOUT_SECONDS)
        except BaseException as error:
            errors.append(error)
            locked.set()
        finally:
            connection.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        assert locked.wait(timeout=JOIN_TIMEOUT_SECONDS) and errors == [], errors
        yield
    finally:
        release.set()
        thread.join(timeout=JOIN_TIMEOUT_SECONDS)
        assert not thread.is_alive(), "the share lock holder is stuck"
