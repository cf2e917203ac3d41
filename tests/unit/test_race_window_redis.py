"""The race window's Redis backend, against the real Redis at 127.0.0.1:6379: the same barrier as
the file backend (K pass together, a lone one after the timeout, nobody waits forever), plus
what several hosts need: a lease on the armed window and keys kept apart per database."""

import multiprocessing
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils import timezone

from accounts.audit import audit_account
from accounts.models import Account
from accounts.withdrawals import SAFE_STRATEGIES, Strategy, withdraw
from labserver.lab import free_port
from racewindow import barrier as race_window
from racewindow import redis_backend
from racewindow.statements import holding
from tests.concurrency import run_concurrently
from tests.helpers import REDIS_URL, require_redis

JOIN_SECONDS = 60
TIMEOUT = 0.25
# Shortened so a test waits a lease out in about a second, not three.
LEASE_SECONDS = 1.0
RENEW_SECONDS = 0.25
# How long past its due time a window may close, or a lease expire, on a busy 2-core machine.
LATE_SECONDS = 2.0


@dataclass(frozen=True)
class Namespace:
    client: redis.Redis
    prefix: str

    def keys(self, pattern: str = "*") -> list[str]:
        return [key.decode() for key in self.client.scan_iter(match=f"{self.prefix}{pattern}")]

    def state_key(self) -> str:
        """The one resource's state, once a holder has created it (bounded)."""
        deadline = time.monotonic() + JOIN_SECONDS
        while time.monotonic() < deadline:
            states = [key for key in self.keys("resource:*") if ":gate:" not in key]
            if states:
                return states[0]
            time.sleep(0.01)
        raise AssertionError("no request arrived at the barrier")


@pytest.fixture
def redis_window(settings, monkeypatch) -> Namespace:
    """The Redis backend, under a namespace of this test's own, so concurrent test runs (which
    share the in-memory test database's name) never meet at the barrier; its keys go afterwards."""
    require_redis()
    settings.RACE_WINDOW_BACKEND = REDIS_URL
    namespace = Namespace(
        client=redis.Redis.from_url(REDIS_URL), prefix=f"{redis_backend.KEY_PREFIX}test-{uuid.uuid4().hex}:"
    )
    monkeypatch.setattr(redis_backend, "namespace", lambda database: namespace.prefix)
    monkeypatch.setattr(redis_backend, "LEASE_SECONDS", LEASE_SECONDS)
    monkeypatch.setattr(redis_backend, "RENEW_SECONDS", RENEW_SECONDS)
    try:
        yield namespace
    finally:
        keys = namespace.keys()
        if keys:
            namespace.client.delete(*keys)
        namespace.client.close()


def hold_at_once(*, window: race_window.RaceWindow, resources: list[str]) -> list:
    """One thread per resource name, each held at its barrier; their passages (or errors). Fails,
    rather than hangs, if one is still held after JOIN_SECONDS."""
    return run_concurrently(
        [
            lambda resource=resource: race_window.hold(window=window, resource=resource)
            for resource in resources
        ]
    )


@pytest.mark.django_db
@pytest.mark.parametrize("parties", [2, 5])
def test_k_requests_pass_together_in_one_window(redis_window, parties):
    with race_window.armed(parties=parties, timeout=5) as barrier:
        assert isinstance(barrier.backend, redis_backend.RedisBackend)
        for round_ in range(3):
            passages = hold_at_once(window=barrier.window, resources=["balance"] * parties)

            assert not any(isinstance(passage, Exception) for passage in passages), passages
            assert sorted(passage.position for passage in passages) == list(range(1, parties + 1))
            assert {passage.window for passage in passages} == {round_}
    stats = barrier.stats()
    assert (stats.held, stats.windows, stats.timeouts) == (3 * parties, 3, 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parties", [2, 4])
def test_naive_loses_exactly_all_but_one_every_time(redis_window, make_account, parties):
    account = make_account(opening=1_000)

    def one() -> object:
        user = Account.objects.get(pk=account.pk).user  # looked up before holding, as in a view
        with holding(window=barrier.window):
            return withdraw(user=user, amount=1, strategy=Strategy.NAIVE, request_started_at=timezone.now())

    with race_window.armed(parties=parties, timeout=5) as barrier:
        for round_ in range(1, 4):
            results = run_concurrently([one] * parties)

            assert not any(isinstance(result, Exception) for result in results), results
            account.refresh_from_db()
            assert account.current == 1_000 - round_
            assert audit_account(account=account).lost_withdrawals == round_ * (parties - 1)
    assert barrier.stats() == race_window.BarrierStats(held=3 * parties, windows=3, timeouts=0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("strategy", SAFE_STRATEGIES)
def test_safe_strategies_lose_nothing_and_never_hang(redis_window, make_account, strategy):
    parties = 3
    account = make_account(opening=1_000)

    def one() -> object:
        user = Account.objects.get(pk=account.pk).user
        with holding(window=barrier.window):
            return withdraw(user=user, amount=1, strategy=strategy, request_started_at=timezone.now())

    started = time.monotonic()
    with race_window.armed(parties=parties, timeout=TIMEOUT) as barrier:
        results = run_concurrently([one] * parties)
    elapsed = time.monotonic() - started

    assert not any(isinstance(result, Exception) for result in results), results
    audit = audit_account(account=account)
    assert (audit.anomalies, audit.lost_withdrawals, audit.final) == ([], 0, 1_000 - parties)
    # At worst each waits out its own window in turn, plus a retry's back-off.
    assert elapsed < parties * (TIMEOUT + 1) + 5


@pytest.mark.django_db
def test_a_lone_request_passes_after_the_timeout(redis_window):
    with race_window.armed(parties=4, timeout=TIMEOUT) as barrier:
        (passage,) = hold_at_once(window=barrier.window, resources=["balance"])

    assert passage.position == 1
    assert TIMEOUT <= passage.waited < TIMEOUT + LATE_SECONDS
    assert barrier.stats() == race_window.BarrierStats(held=1, windows=1, timeouts=1)


@pytest.mark.django_db
def test_a_waiter_leaves_even_if_its_gate_never_opens(redis_window):
    # The window is closed behind the waiter's back and no token ever comes, as if Redis had lost
    # the gate (evicted, or dropped in a failover): its bounded wait and re-check still let it out.
    window = race_window.RaceWindow(parties=2, timeout=1.0)
    with race_window.armed(parties=window.parties, timeout=window.timeout) as barrier:
        passages = []
        waiter = threading.Thread(
            target=lambda: passages.append(race_window.hold(window=window, resource="balance"))
        )
        started = time.monotonic()
        waiter.start()
        redis_window.client.hset(redis_window.state_key(), mapping={"window": 1, "arrived": 0})
        waiter.join(timeout=JOIN_SECONDS)
    elapsed = time.monotonic() - started

    assert not waiter.is_alive() and [passage.position for passage in passages] == [1]
    assert elapsed < window.timeout + LATE_SECONDS
    # It left because it found the window closed, not because the timeout closed it.
    assert barrier.stats() == race_window.BarrierStats(held=1, windows=0, timeouts=0)


def hold_and_be_killed(channel, *, window: race_window.RaceWindow) -> None:
    """In a child process: arrive first at the barrier and wait there until killed."""
    channel.send("started")
    race_window.hold(window=window, resource="balance")


@pytest.mark.django_db
def test_a_waiter_whose_fellow_died_still_leaves(redis_window):
    # Long enough that this process arrives before the window the child opened has timed out.
    window = race_window.RaceWindow(parties=3, timeout=3.0)
    with race_window.armed(parties=window.parties, timeout=window.timeout) as barrier:
        context = multiprocessing.get_context("fork")
        parent_end, child_end = context.Pipe()
        child = context.Process(target=hold_and_be_killed, args=(child_end,), kwargs={"window": window})
        child.start()
        try:
            assert parent_end.poll(JOIN_SECONDS) and parent_end.recv() == "started"
            redis_window.state_key()
            os.kill(child.pid, signal.SIGKILL)
            child.join(timeout=JOIN_SECONDS)
            (passage,) = hold_at_once(window=window, resources=["balance"])
        finally:
            child.kill()
            child.join(timeout=JOIN_SECONDS)

    assert passage.position == 2 and passage.waited < window.timeout + LATE_SECONDS
    assert barrier.stats() == race_window.BarrierStats(held=2, windows=1, timeouts=1)


def arm_until_released(channel) -> None:
    """In a child process: arm the race window for the database until the parent says so."""
    with race_window.armed(parties=2, timeout=1.0):
        channel.send("armed")
        channel.poll(JOIN_SECONDS)


@pytest.fixture
def other_process(redis_window):
    """A forked child (another host, as far as the lease goes) that arms the race window in the
    same Redis namespace; it never touches the database."""
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe()
    child = context.Process(target=arm_until_released, args=(child_end,))
    child.start()
    try:
        assert parent_end.poll(JOIN_SECONDS) and parent_end.recv() == "armed", "the child did not arm"
        yield child, parent_end
    finally:
        if child.is_alive():
            parent_end.send("release")
        child.join(timeout=JOIN_SECONDS)
        if child.is_alive():  # pragma: no cover
            child.kill()
            child.join(timeout=JOIN_SECONDS)
        parent_end.close()


@pytest.mark.django_db
def test_arming_is_exclusive_across_processes_and_renewed_while_armed(settings, other_process):
    child, parent_end = other_process
    settings.DEBUG, settings.RACE_WINDOW = True, race_window.ARMED
    # Several leases long: the child's thread keeps renewing it.
    time.sleep(3 * LEASE_SECONDS)

    assert race_window.active_window(mode=race_window.server_mode()) == race_window.RaceWindow(2, 1.0)
    with pytest.raises(race_window.RaceWindowError, match=f"Process {child.pid} on .* has armed the race"):  # noqa: SIM117
        with race_window.armed(parties=3):
            pass  # pragma: no cover
    # Refused without touching what the other process armed.
    assert race_window.current_backend().armed_window() == race_window.RaceWindow(2, 1.0)
    assert race_window.active_window(mode=None) is None

    parent_end.send("release")
    child.join(timeout=JOIN_SECONDS)
    assert child.exitcode == 0
    # Released on exit, not left to expire.
    assert race_window.current_backend().armed_window() is None
    with race_window.armed(parties=3):
        assert race_window.current_backend().armed_window() == race_window.RaceWindow(parties=3)


@pytest.mark.django_db
def test_the_lease_expires_once_the_arming_process_is_killed(other_process):
    child, _ = other_process
    backend = race_window.current_backend()

    os.kill(child.pid, signal.SIGKILL)  # no chance to release: only the lease ends it
    child.join(timeout=JOIN_SECONDS)
    killed = time.monotonic()
    while backend.armed_window() is not None and time.monotonic() - killed < LEASE_SECONDS + LATE_SECONDS:
        time.sleep(0.05)

    assert backend.armed_window() is None
    with race_window.armed(parties=3):
        assert backend.armed_window() == race_window.RaceWindow(parties=3)


@pytest.mark.django_db
def test_stats_cover_every_resource_and_arming_clears_them(redis_window):
    with race_window.armed(parties=2, timeout=5) as barrier:
        hold_at_once(window=barrier.window, resources=["alice", "bob", "alice", "bob"])
        assert barrier.stats() == race_window.BarrierStats(held=4, windows=2, timeouts=0)
    # Kept after the window is disarmed, for whoever reports on it...
    assert barrier.stats().held == 4

    with race_window.armed(parties=2, timeout=5) as barrier:
        # ...and cleared by the next arming, with every resource's state.
        assert barrier.stats() == race_window.BarrierStats(held=0, windows=0, timeouts=0)
        assert redis_window.keys("resource:*") == []


def test_the_namespace_is_the_database_engine_and_name_not_its_address():
    engine = "django.db.backends.postgresql"
    by_socket = {"ENGINE": engine, "NAME": "lab", "HOST": "/var/run/postgresql", "PORT": ""}
    by_address = {"ENGINE": engine, "NAME": "lab", "HOST": "10.0.0.7", "PORT": "5432"}
    other_lab = {**by_address, "NAME": "lab_2"}

    assert redis_backend.namespace(by_socket) == redis_backend.namespace(by_address)
    assert redis_backend.namespace(by_address) != redis_backend.namespace(other_lab)
    assert redis_backend.namespace(by_address).startswith(redis_backend.KEY_PREFIX)


@pytest.mark.parametrize(
    "value",
    [
        "memcached://127.0.0.1:11211",
        "redis",
        "http://127.0.0.1:6379/0",
        "ftp://me:hunter2@db/0",
        "redis://127.0.0.1:6379/first",
    ],
)
def test_a_backend_that_is_neither_file_nor_redis_is_refused(settings, value):
    settings.RACE_WINDOW_BACKEND = value

    with pytest.raises(ImproperlyConfigured, match="RACE_WINDOW_BACKEND must be empty or 'file'") as error:
        race_window.check_settings()
    assert "hunter2" not in str(error.value)


def test_a_redis_that_does_not_answer_is_refused_at_start_up(settings):
    settings.RACE_WINDOW_BACKEND = f"redis://:hunter2@127.0.0.1:{free_port()}/0"

    with pytest.raises(ImproperlyConfigured, match="Redis at redis://127.0.0.1:.* does not answer") as error:
        race_window.check_settings()
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize("value", ["", "file", " FILE "])
def test_the_file_backend_is_the_default(settings, value):
    settings.RACE_WINDOW_BACKEND = value

    race_window.check_settings()
    assert race_window.backend_url() is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stops", ["before the request", "while it is held"])
def test_a_server_whose_redis_went_away_answers_503_with_the_reason(
    settings, client, make_account, monkeypatch, stops
):
    """Armed on a Redis that no longer answers, a withdrawal is neither held nor run unheld."""
    settings.DEBUG = True
    settings.RACE_WINDOW = "armed" if stops == "before the request" else "2"
    settings.RACE_WINDOW_BACKEND = f"redis://127.0.0.1:{free_port()}/0"
    account = make_account(opening=10)
    client.force_login(account.user)

    answer = client.post(f"{reverse('withdraw')}?strategy=naive", {"amount": "1"})

    assert answer.status_code == 503
    assert "barrier is unavailable" in answer.content.decode()
    assert "does not answer" in answer.content.decode()
    account.refresh_from_db()
    assert account.current == 10
