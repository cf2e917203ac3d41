"""Deterministic race mode in one process: real threads, each with its own connection, as a
project would use ``armed`` and ``holding`` in its own test suite."""

import logging
import multiprocessing
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from accounts.audit import audit_account
from accounts.models import Account
from accounts.withdrawals import SAFE_STRATEGIES, Strategy, withdraw
from racelab.racewindow import barrier as race_window
from racelab.racewindow import lock_waits, statements
from racelab.racewindow.statements import holding
from tests.concurrency import run_concurrently

JOIN_SECONDS = 60
TIMEOUT = 0.25
NO_PRIVILEGE_TO_LACK = "MariaDB alone guards its lock waits with a privilege"


def withdraw_concurrently(
    *, account_id: int, strategy: Strategy, parties: int, window: race_window.RaceWindow | None
) -> list:
    """``parties`` withdrawals of 1 at once, each held in ``window`` as a server holds a request;
    what each got (or raised)."""

    def one() -> object:
        # The user is looked up before holding: the first read of the account table inside is
        # where the request waits, and it must be the withdrawal's own.
        user = Account.objects.get(pk=account_id).user
        with holding(window=window):
            return withdraw(user=user, amount=1, strategy=strategy, request_started_at=timezone.now())

    return run_concurrently([one] * parties)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parties", [2, 5])
def test_naive_loses_exactly_all_but_one_every_time(make_account, parties):
    account = make_account(opening=1_000)
    with race_window.armed(parties=parties, timeout=5) as barrier:
        for round_ in range(1, 4):
            results = withdraw_concurrently(
                account_id=account.pk, strategy=Strategy.NAIVE, parties=parties, window=barrier.window
            )

            assert len(results) == parties and not any(isinstance(r, Exception) for r in results), results
            account.refresh_from_db()
            assert account.current == 1_000 - round_  # parties withdrawals, one shows
            assert audit_account(account=account).lost_withdrawals == round_ * (parties - 1)
    # Every window closed by its last arrival: a naive read takes no lock, so none was serialized.
    assert barrier.stats() == race_window.BarrierStats(held=3 * parties, windows=3, timeouts=0, serialized=0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parties", [2, 5])
def test_requests_blocked_on_the_held_lock_count_as_arrived(make_account, parties):
    # locking's read is SELECT ... FOR UPDATE (on SQLite, its transaction holds the write lock
    # from BEGIN): the first withdrawal parks holding the lock, and the others wait for it inside
    # the database, before their park point. Counted as arrived, they close the window at once;
    # each goes straight on when it gets the lock and reaches its park point.
    rounds, timeout = 3, 5.0
    account = make_account(opening=1_000)
    started = time.monotonic()
    with race_window.armed(parties=parties, timeout=timeout) as barrier:
        for round_ in range(1, rounds + 1):
            results = withdraw_concurrently(
                account_id=account.pk, strategy=Strategy.LOCKING, parties=parties, window=barrier.window
            )

            assert not any(isinstance(result, Exception) for result in results), results
            account.refresh_from_db()
            assert account.current == 1_000 - round_ * parties
        stats = barrier.stats()
    elapsed = time.monotonic() - started

    assert audit_account(account=account).anomalies == []
    assert stats == race_window.BarrierStats(
        held=rounds * parties, windows=rounds, timeouts=0, serialized=rounds
    )
    # Not one timeout waited out, over all the rounds.
    assert elapsed < timeout


@pytest.mark.django_db(transaction=True)
def test_a_blocked_request_that_never_reaches_its_park_point_is_forgotten_after_the_timeout(make_account):
    parties, timeout = 3, 1.0
    account = make_account(opening=1_000)
    user = account.user

    def locking(window: race_window.RaceWindow) -> object:
        with holding(window=window):
            return withdraw(user=user, amount=1, strategy=Strategy.LOCKING, request_started_at=timezone.now())

    def write_without_reading(window: race_window.RaceWindow) -> int:
        # Blocked on the held withdrawal's lock, so counted, but its park point is a read of the
        # account and this request only writes it.
        with holding(window=window):
            return Account.objects.filter(pk=account.pk).update(current=F("current"))

    with race_window.armed(parties=parties, timeout=timeout) as barrier, ThreadPoolExecutor(1) as pool:
        first = pool.submit(run_concurrently, [lambda: locking(barrier.window)])
        wait_for(lambda: barrier.stats().held == 1)
        others = run_concurrently(
            [lambda: locking(barrier.window), lambda: write_without_reading(barrier.window)]
        )
        assert not any(isinstance(result, Exception) for result in [*first.result(JOIN_SECONDS), *others])
        serialized = barrier.stats()
        # The window's third party never came: after the timeout, the next burst is held whole.
        time.sleep(timeout)
        results = withdraw_concurrently(
            account_id=account.pk, strategy=Strategy.NAIVE, parties=parties, window=barrier.window
        )
        assert not any(isinstance(result, Exception) for result in results), results
        stats = barrier.stats()

    assert serialized == race_window.BarrierStats(held=2, windows=1, timeouts=0, serialized=1)
    assert stats == race_window.BarrierStats(held=2 + parties, windows=2, timeouts=0, serialized=1)
    account.refresh_from_db()
    assert account.current == 1_000 - 2 - 1
    assert audit_account(account=account).lost_withdrawals == parties - 1


@pytest.mark.django_db(transaction=True)
def test_a_database_user_that_may_not_see_lock_waits_is_not_counted_and_told_once(caplog):
    if connection.vendor != "mysql":
        pytest.skip(NO_PRIVILEGE_TO_LACK)
    name, password = f"racelab_no_process_{os.getpid()}", "no-process"
    project = connections[DEFAULT_DB_ALIAS]
    limited = type(project)({**project.settings_dict, "USER": name, "PASSWORD": password}, alias="limited")
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE USER '{name}'@'%%' IDENTIFIED BY %s", [password])
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"GRANT SELECT ON `{project.settings_dict['NAME']}`.* TO '{name}'@'%'")
        limited.ensure_connection()
        with caplog.at_level(logging.WARNING, logger=lock_waits.__name__):
            # Two requests of that user, then one of the project's own, which may ask.
            counts = [lock_waits.for_connection(connection=limited).blocked() for _ in range(2)]
            counts.append(lock_waits.for_connection(connection=connection).blocked())
    finally:
        limited.close()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP USER '{name}'@'%'")

    assert counts == [0, 0, 0]
    (warning,) = caplog.records
    message = warning.getMessage()
    assert message.startswith("The race window cannot ask the database which sessions wait on a held")
    assert "(1227, " in message and "grant the database user the PROCESS privilege" in message


@pytest.mark.database_independent
def test_the_sqlite_writers_of_a_process_that_died_stop_counting(tmp_path):
    writers = lock_waits.Writers(path=tmp_path / lock_waits.WRITERS_FILE)
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe()
    child = context.Process(target=write_until_killed, args=(writers, child_end))
    child.start()
    try:
        assert parent_end.poll(JOIN_SECONDS) and parent_end.recv() == "writing"
        with writers.waiting():
            assert writers.count() == 2
        assert writers.count() == 1
    finally:
        child.kill()  # SIGKILL, mid-statement: it never unregisters
        child.join(timeout=JOIN_SECONDS)
    assert writers.count() == 0


def write_until_killed(writers: lock_waits.Writers, channel) -> None:
    """In a child process: a request forever in its write statement."""
    with writers.waiting():
        channel.send("writing")
        time.sleep(JOIN_SECONDS)


def wait_for(condition) -> None:
    deadline = time.monotonic() + JOIN_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
def test_safe_strategies_lose_nothing_and_never_deadlock(make_account, strategy):
    parties = 3
    account = make_account(opening=1_000)
    started = time.monotonic()
    with race_window.armed(parties=parties, timeout=TIMEOUT) as barrier:
        results = withdraw_concurrently(
            account_id=account.pk, strategy=strategy, parties=parties, window=barrier.window
        )
    elapsed = time.monotonic() - started

    done = [result for result in results if not isinstance(result, Exception)]
    account.refresh_from_db()
    audit = audit_account(account=account)
    assert audit.anomalies == [] and audit.lost_withdrawals == 0
    assert audit.final == 1_000 - len(done) and audit.ledger_rows == len(done)
    assert len(done) == parties  # the retries of optimistic and serializable all get through
    # Bounded by the timeout: at worst each withdrawal waits its own full window, in turn,
    # plus a retry's back-off; far below the thread-join limit that would mean a hang.
    assert elapsed < parties * (TIMEOUT + 1) + 5


@pytest.mark.django_db(transaction=True)
def test_unarmed_requests_never_reach_the_barrier(client, make_account, monkeypatch):
    account = make_account(opening=10)
    client.force_login(account.user)
    reached = []
    monkeypatch.setattr(statements, "hold", lambda **passage: reached.append(passage))
    url = f"{reverse('withdraw')}?strategy=naive"

    assert race_window.active_window(mode=race_window.server_mode()) is None
    assert client.post(url, {"amount": "1"}).status_code == 200
    assert reached == []
    # The same request, armed: it reaches the barrier at its read of the balance.
    with race_window.armed(parties=1):
        assert client.post(url, {"amount": "1"}).status_code == 200
    assert [passage["resource"].split("|")[0] for passage in reached] == [Account._meta.db_table]
    account.refresh_from_db()
    assert account.current == 8


@pytest.mark.django_db(transaction=True)
def test_a_lone_withdrawal_is_let_through_by_the_timeout(make_account):
    account = make_account(opening=10)
    with race_window.armed(parties=4, timeout=TIMEOUT) as barrier:
        started = time.monotonic()
        with holding(window=barrier.window) as statement_hold:
            withdraw(
                user=account.user, amount=1, strategy=Strategy.LOCKING, request_started_at=timezone.now()
            )
        waited = time.monotonic() - started

    assert TIMEOUT <= waited < TIMEOUT + 2
    assert barrier.stats().timeouts == 1
    assert statement_hold.passage.position == 1 and statement_hold.passage.waited >= TIMEOUT


@pytest.mark.django_db
def test_arming_twice_is_refused():
    with race_window.armed(parties=2):
        with pytest.raises(race_window.RaceWindowError, match="already armed"):  # noqa: SIM117
            with race_window.armed(parties=3):
                pass  # pragma: no cover
        assert race_window.active_window(mode=None) == race_window.RaceWindow(parties=2)
    assert race_window.active_window(mode=None) is None


@pytest.mark.parametrize(
    ("parties", "timeout", "message"),
    [
        (0, 1.0, f"parties must be from 1 to {race_window.MAX_PARTIES}, not 0"),
        (
            race_window.MAX_PARTIES + 1,
            1.0,
            f"parties must be from 1 to {race_window.MAX_PARTIES}, not {race_window.MAX_PARTIES + 1}",
        ),
        (2, 0, f"timeout must be above 0 and at most {race_window.MAX_TIMEOUT_SECONDS} s, not 0"),
        (
            2,
            race_window.MAX_TIMEOUT_SECONDS + 1,
            f"timeout must be above 0 and at most {race_window.MAX_TIMEOUT_SECONDS} s, "
            f"not {race_window.MAX_TIMEOUT_SECONDS + 1}",
        ),
    ],
)
def test_nonsense_windows_are_refused(parties, timeout, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        race_window.RaceWindow(parties=parties, timeout=timeout)


@pytest.mark.django_db
def test_server_mode_is_refused_with_debug_off(settings):
    settings.DEBUG = False
    settings.RACE_WINDOW = "3"

    with pytest.raises(ImproperlyConfigured, match="refused with DEBUG off"):
        race_window.check_settings()
    with pytest.raises(ImproperlyConfigured, match=f"^{re.escape(race_window.REFUSED_WITHOUT_DEBUG)}$"):
        race_window.server_mode()

    settings.ALLOW_RACE_WINDOW_WITHOUT_DEBUG = True
    mode = race_window.server_mode()
    assert race_window.active_window(mode=mode) == race_window.RaceWindow(3, 0.5, at="accounts_account")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "timeout", "expected"),
    [
        ("off", "0.5", None),
        ("", "0.5", None),
        ("7", "2", race_window.RaceWindow(parties=7, timeout=2.0, at="accounts_account")),
        ("armed", "0.5", race_window.ARMED),
    ],
)
def test_server_mode_reads_the_settings(settings, value, timeout, expected):
    settings.DEBUG = True
    settings.RACE_WINDOW = value
    settings.RACE_WINDOW_TIMEOUT = timeout

    assert race_window.server_mode() == expected


def test_a_project_without_race_window_settings_reads_them_from_the_environment(settings, monkeypatch):
    # A project that only added racelab: started with RACE_WINDOW=... in its environment.
    for name in ("RACE_WINDOW", "RACE_WINDOW_TIMEOUT", "RACE_WINDOW_AT", "RACE_WINDOW_BACKEND"):
        delattr(settings, name)
    settings.DEBUG = True
    assert race_window.server_mode() is None
    assert race_window.default_park_points() == ""

    monkeypatch.setenv("RACE_WINDOW", "4")
    monkeypatch.setenv("RACE_WINDOW_TIMEOUT", "1.5")
    monkeypatch.setenv("RACE_WINDOW_AT", "shop_product:write")
    assert race_window.server_mode() == race_window.RaceWindow(4, 1.5, at="shop_product:write")

    # The project's own settings win over the environment.
    settings.RACE_WINDOW = "off"
    assert race_window.server_mode() is None


def test_a_fixed_window_without_park_points_is_refused_and_armed_mode_is_not(settings):
    settings.DEBUG = True
    settings.RACE_WINDOW_AT = ""
    settings.RACE_WINDOW = "3"

    with pytest.raises(ImproperlyConfigured, match=f"^{re.escape(race_window.NO_PARK_POINT)}$"):
        race_window.check_settings()
    # Armed, whoever arms the window may name them (splatter --race-window-at).
    settings.RACE_WINDOW = race_window.ARMED
    assert race_window.server_mode() == race_window.ARMED


@pytest.mark.parametrize(("value", "timeout"), [("many", "0.5"), ("3", "soon"), ("3", "0"), ("-2", "1")])
def test_server_mode_refuses_nonsense_settings(settings, value, timeout):
    settings.DEBUG = True
    settings.RACE_WINDOW = value
    settings.RACE_WINDOW_TIMEOUT = timeout

    with pytest.raises(ImproperlyConfigured, match="RACE_WINDOW must be 'off', 'armed' or a number"):
        race_window.check_settings()


@pytest.mark.parametrize("at", ["accounts_account:sometimes", "accounts_account:read:0", "drop table;"])
def test_server_mode_refuses_nonsense_park_points(settings, at):
    settings.DEBUG = True
    settings.RACE_WINDOW = "3"
    settings.RACE_WINDOW_AT = at

    with pytest.raises(ImproperlyConfigured, match="RACE_WINDOW_AT must name park points"):
        race_window.check_settings()
    # Checked whatever the mode: a test that arms in-process uses it too.
    settings.RACE_WINDOW = "off"
    with pytest.raises(ImproperlyConfigured, match="RACE_WINDOW_AT must name park points"):
        race_window.check_settings()


@pytest.mark.django_db
def test_an_armed_server_follows_whoever_armed_the_database(settings):
    settings.DEBUG = True
    settings.RACE_WINDOW = race_window.ARMED

    assert race_window.active_window(mode=race_window.server_mode()) is None
    with race_window.armed(parties=6, timeout=1.5):
        # Another process sees the armed file; this one would see its own arming anyway, so
        # read the file the way a Gunicorn worker does.
        assert race_window._read_armed_file(race_window.barrier_directory()) == race_window.RaceWindow(6, 1.5)
    assert race_window._read_armed_file(race_window.barrier_directory()) is None


@pytest.mark.django_db(transaction=True)
def test_a_window_short_of_parties_closes_by_the_timeout(make_account):
    # Armed for 5, but only 3 come: they wait together until the timeout, then all go on, so
    # naive still loses all but one of them.
    timeout = 1.0
    account = make_account(opening=1_000)
    started = time.monotonic()
    with race_window.armed(parties=5, timeout=timeout) as barrier:
        results = withdraw_concurrently(
            account_id=account.pk, strategy=Strategy.NAIVE, parties=3, window=barrier.window
        )
    elapsed = time.monotonic() - started

    assert len(results) == 3 and not any(isinstance(result, Exception) for result in results)
    account.refresh_from_db()
    assert account.current == 999
    assert audit_account(account=account).lost_withdrawals == 2
    stats = barrier.stats()
    assert (stats.held, stats.windows, stats.timeouts) == (3, 1, 1)
    assert elapsed >= timeout


def hold_the_race_window(channel) -> None:
    """In a child process: arm the race window for this database until the parent says so."""
    with race_window.armed(parties=2, timeout=1.0):
        channel.send("armed")
        channel.poll(JOIN_SECONDS)


@pytest.fixture
def other_process():
    """A forked child process that arms the race window for the test database; ``release()``
    lets it go. Forked, so it shares the test's database settings; it never touches the database.
    """
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe()
    child = context.Process(target=hold_the_race_window, args=(child_end,))
    child.start()

    def release() -> None:
        if child.is_alive():
            parent_end.send("release")
        child.join(timeout=JOIN_SECONDS)

    try:
        assert parent_end.poll(JOIN_SECONDS) and parent_end.recv() == "armed", "the child did not arm"
        yield child, release
    finally:
        release()
        if child.is_alive():  # pragma: no cover
            child.kill()
            child.join(timeout=JOIN_SECONDS)
        parent_end.close()


@pytest.mark.django_db
def test_arming_is_refused_while_another_process_holds_it(other_process):
    child, release = other_process

    with pytest.raises(race_window.RaceWindowError, match=f"Process {child.pid} has armed the race window"):  # noqa: SIM117
        with race_window.armed(parties=3):
            pass  # pragma: no cover
    # Refused without touching what the other process armed.
    assert race_window._read_armed_file(race_window.barrier_directory()) == race_window.RaceWindow(2, 1.0)
    assert race_window.active_window(mode=None) is None

    release()
    assert child.exitcode == 0
    with race_window.armed(parties=3):
        assert race_window.active_window(mode=None) == race_window.RaceWindow(parties=3)


@pytest.mark.django_db
def test_arming_is_allowed_once_the_process_that_armed_has_died(other_process):
    child, _ = other_process
    armed_file = race_window.barrier_directory() / race_window.ARMED_FILE

    child.kill()  # SIGKILL: it leaves its armed file behind
    child.join(timeout=JOIN_SECONDS)

    assert armed_file.exists()
    assert race_window._read_armed_file(race_window.barrier_directory()) is None
    with race_window.armed(parties=3):
        assert race_window._read_armed_file(race_window.barrier_directory()) == race_window.RaceWindow(3)
    assert not armed_file.exists()
