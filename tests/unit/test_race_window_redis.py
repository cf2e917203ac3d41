"""The race window's Redis backend, against the real Redis at 127.0.0.1:6379: the same barrier as
the file backend (K pass together, a lone one after the timeout, nobody waits forever), plus
what several hosts need: a lease on the armed window and keys kept apart per database."""

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils import timezone

from accounts.audit import audit_account
from accounts.models import Account
from accounts.withdrawals import SAFE_STRATEGIES, Strategy, withdraw
from labserver.lab import PROJECT_DIR, free_port
from racelab.racewindow import barrier as race_window
from racelab.racewindow import redis_backend
from racelab.racewindow.statements import holding
from tests.concurrency import run_concurrently
from tests.helpers import REDIS_URL, require_redis

JOIN_SECONDS = 60
TIMEOUT = 0.25
# Shortened so a test waits a lease out in two seconds, not three; renewed often enough that a
# busy 2-core machine may stall the renewer 1.5 s without losing it.
LEASE_SECONDS = 2.0
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

    def wait_for_arrivals(self, count: int) -> None:
        """Until ``count`` requests wait in the one resource's open window (bounded)."""
        state_key, deadline = self.state_key(), time.monotonic() + JOIN_SECONDS
        while self.client.hget(state_key, "arrived") != str(count).encode():
            assert time.monotonic() < deadline, f"{count} requests never waited at the barrier"
            time.sleep(0.01)


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
    assert barrier.stats() == race_window.BarrierStats(held=3 * parties, windows=3, timeouts=0, serialized=0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parties", [2, 4])
def test_requests_blocked_on_the_held_lock_count_as_arrived(redis_window, make_account, parties):
    # locking's first withdrawal parks holding the row lock (on SQLite, the write lock); the others
    # wait for it in the database. Counted as arrived, they close the window at once, then each
    # goes straight on as it reaches its park point.
    rounds, timeout = 3, 5.0
    account = make_account(opening=1_000)

    def one() -> object:
        user = Account.objects.get(pk=account.pk).user
        with holding(window=barrier.window) as statement_hold:
            withdraw(user=user, amount=1, strategy=Strategy.LOCKING, request_started_at=timezone.now())
        return statement_hold.passage

    started = time.monotonic()
    with race_window.armed(parties=parties, timeout=timeout) as barrier:
        for round_ in range(rounds):
            passages = run_concurrently([one] * parties)

            assert not any(isinstance(passage, Exception) for passage in passages), passages
            assert sorted(passage.position for passage in passages) == list(range(1, parties + 1))
            assert {passage.window for passage in passages} == {round_}
            assert sorted(passage.waited for passage in passages)[: parties - 1] == [0.0] * (parties - 1)
        stats = barrier.stats()
    elapsed = time.monotonic() - started

    assert audit_account(account=account).final == 1_000 - rounds * parties
    assert stats == race_window.BarrierStats(
        held=rounds * parties, windows=rounds, timeouts=0, serialized=rounds
    )
    assert elapsed < timeout


@pytest.mark.django_db
def test_the_parties_a_serialized_window_carries_are_forgotten_after_the_timeout(redis_window):
    with race_window.armed(parties=3, timeout=TIMEOUT) as barrier:
        # Two sessions wait on the first party's lock: the window closes at once, carrying two.
        first = race_window.hold(window=barrier.window, resource="balance", blocked=lambda: 2)
        carried = race_window.hold(window=barrier.window, resource="balance")
        # The third never comes (refused, rolled back): a timeout later, a request waits again.
        time.sleep(TIMEOUT + 0.05)
        late = race_window.hold(window=barrier.window, resource="balance")

    assert (first.window, first.position) == (0, 1) and first.waited < TIMEOUT
    assert carried == race_window.Passage(window=0, position=2, waited=0.0)
    assert (late.window, late.position) == (1, 1) and TIMEOUT <= late.waited < TIMEOUT + LATE_SECONDS
    assert barrier.stats() == race_window.BarrierStats(held=3, windows=2, timeouts=1, serialized=1)


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
    assert barrier.stats() == race_window.BarrierStats(held=1, windows=1, timeouts=1, serialized=0)


@pytest.mark.django_db
def test_a_waiter_leaves_even_if_its_gate_never_opens(redis_window):
    # The window is closed behind the waiter's back and no token ever comes, as if Redis had lost
    # the gate (evicted, or dropped in a failover): its bounded wait and re-check still let it out.
    # Long enough that the test closes the window before the timeout would, however busy the machine.
    window = race_window.RaceWindow(parties=2, timeout=3.0)
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
    assert barrier.stats() == race_window.BarrierStats(held=1, windows=0, timeouts=0, serialized=0)


def start_holding(*, window: race_window.RaceWindow, passages: list) -> threading.Thread:
    """A thread held at the barrier of "balance"; its passage goes into ``passages``."""
    thread = threading.Thread(
        target=lambda: passages.append(race_window.hold(window=window, resource="balance"))
    )
    thread.start()
    return thread


@pytest.mark.django_db
def test_a_waiter_left_from_an_earlier_arming_stays_out_of_the_next_ones_window(redis_window):
    # Re-arming clears each resource's state, so the new state's windows count from 0 again. The
    # earlier arming's waiter must not take the new window 0 for its own: it would close it by its
    # own shorter timeout, and push one token too few, as if it were a member.
    earlier = race_window.RaceWindow(parties=3, timeout=0.4)
    with race_window.armed(parties=earlier.parties, timeout=earlier.timeout):
        leftover = start_holding(window=earlier, passages=[])
        redis_window.wait_for_arrivals(1)
    with race_window.armed(parties=3, timeout=5) as barrier:
        passages = []
        first_two = [start_holding(window=barrier.window, passages=passages) for _ in range(2)]
        redis_window.wait_for_arrivals(2)
        # Its timeout passed: it has checked its window, and found it gone.
        leftover.join(timeout=JOIN_SECONDS)
        assert not leftover.is_alive()
        assert barrier.stats() == race_window.BarrierStats(held=2, windows=0, timeouts=0, serialized=0)
        (third,) = hold_at_once(window=barrier.window, resources=["balance"])
        for thread in first_two:
            thread.join(timeout=JOIN_SECONDS)

    passages.append(third)
    assert sorted((passage.window, passage.position) for passage in passages) == [(0, 1), (0, 2), (0, 3)]
    # All three went on when the third came, none at the timeout.
    assert max(passage.waited for passage in passages) < barrier.window.timeout
    assert barrier.stats() == race_window.BarrierStats(held=3, windows=1, timeouts=0, serialized=0)


@pytest.mark.django_db
def test_the_counters_and_the_states_counter_expire_while_a_window_is_open(redis_window):
    # Created by the first arrival, before any window closes: a process that dies then must not
    # leave them in Redis for ever.
    with race_window.armed(parties=2, timeout=5) as barrier:
        waiter = start_holding(window=barrier.window, passages=[])
        redis_window.wait_for_arrivals(1)
        lives = [redis_window.client.pttl(f"{redis_window.prefix}{key}") for key in ("stats", "epochs")]
        hold_at_once(window=barrier.window, resources=["balance"])
        waiter.join(timeout=JOIN_SECONDS)

    assert all(0 < life <= redis_backend.STATE_TTL_MS for life in lives), lives


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
    assert barrier.stats() == race_window.BarrierStats(held=2, windows=1, timeouts=1, serialized=0)


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
    # Two leases long: the child's thread keeps renewing it.
    time.sleep(2 * LEASE_SECONDS)

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


def read_counters_for(barrier: race_window.ArmedBarrier, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        barrier.stats()
        time.sleep(0.05)


@pytest.mark.django_db
def test_a_lost_lease_is_said_by_the_counters_and_on_disarming(redis_window):
    lost = "lease in Redis lapsed while it was armed"
    # Said on disarming too, for a caller that never reads the counters.
    with pytest.raises(race_window.RaceWindowError, match=lost), race_window.armed(parties=2) as barrier:
        # As if this process had stalled past the lease, or Redis had evicted the key: servers stop
        # holding, and another process may arm and clear the counters.
        redis_window.client.delete(f"{redis_window.prefix}armed")
        with pytest.raises(race_window.RaceWindowError, match=lost):
            read_counters_for(barrier, seconds=RENEW_SECONDS + LATE_SECONDS)


@pytest.mark.django_db
def test_the_lease_outlasts_a_clear_that_takes_longer_than_it(redis_window, monkeypatch):
    # As on a Redis with many keys to scan: the renewer runs from before the clear.
    clear = redis_backend.RedisBackend._clear

    def slow_clear(backend: redis_backend.RedisBackend) -> None:
        time.sleep(1.5 * LEASE_SECONDS)
        clear(backend)

    monkeypatch.setattr(redis_backend.RedisBackend, "_clear", slow_clear)
    with race_window.armed(parties=2) as barrier:
        assert barrier.backend.armed_window() == barrier.window
        time.sleep(LEASE_SECONDS)
        assert barrier.backend.armed_window() == barrier.window
        barrier.stats()


class HangingProxy:
    """A TCP proxy on 127.0.0.1 to the Redis at REDIS_URL that, once hung, passes nothing on
    either way: a Redis that hangs, for the clients that reach it through the proxy."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        self.hung = threading.Event()
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", 6379))
                self.sockets += [client, upstream]
                for source, target in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                if not self.hung.is_set():
                    target.sendall(data)

    def close(self) -> None:
        for open_socket in self.sockets:
            with suppress(OSError):
                open_socket.shutdown(socket.SHUT_RDWR)
            open_socket.close()


@contextmanager
def hanging_proxy() -> Iterator[HangingProxy]:
    proxy = HangingProxy()
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.mark.django_db
def test_disarming_on_a_redis_that_hangs_takes_seconds_not_the_socket_timeout(redis_window, settings):
    with hanging_proxy() as proxy:
        settings.RACE_WINDOW_BACKEND = proxy.url
        with race_window.armed(parties=2):
            proxy.hung.set()
            time.sleep(2 * RENEW_SECONDS)  # a renewal is under way, and hangs
            started = time.monotonic()
        elapsed = time.monotonic() - started

    # At most one renewal's call and the release's, each bounded by the lease's short timeout.
    bound = redis_backend.CONNECT_TIMEOUT_SECONDS + 2 * redis_backend.LEASE_CALL_TIMEOUT_SECONDS
    assert elapsed < bound + LATE_SECONDS < redis_backend.SOCKET_TIMEOUT_SECONDS


def reach_redis(channel) -> None:
    """In a child process: reach Redis through the server the parent had made already."""
    channel.send(redis_backend._server_at(REDIS_URL).client.ping())


def test_a_child_forked_while_the_servers_lock_is_held_still_reaches_redis(redis_window):
    redis_backend.ping(REDIS_URL)
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe()
    # As the lease's renewer, or any thread reaching Redis, may hold it at the moment of a fork.
    with redis_backend._servers_lock:
        child = context.Process(target=reach_redis, args=(child_end,))
        child.start()
    try:
        assert parent_end.poll(JOIN_SECONDS / 6), "the child is stuck on the lock it was forked with"
        assert parent_end.recv() is True
    finally:
        child.kill()
        child.join(timeout=JOIN_SECONDS)


@pytest.mark.django_db
def test_stats_cover_every_resource_and_arming_clears_them(redis_window):
    with race_window.armed(parties=2, timeout=5) as barrier:
        hold_at_once(window=barrier.window, resources=["alice", "bob", "alice", "bob"])
        assert barrier.stats() == race_window.BarrierStats(held=4, windows=2, timeouts=0, serialized=0)
    # Kept after the window is disarmed, for whoever reports on it...
    assert barrier.stats().held == 4

    with race_window.armed(parties=2, timeout=5) as barrier:
        # ...and cleared by the next arming, with every resource's state.
        assert barrier.stats() == race_window.BarrierStats(held=0, windows=0, timeouts=0, serialized=0)
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
        "redis://127.0.0.1:6379/٣",
        "redis://[::1",
        "redis:/me:hunter2@127.0.0.1",
    ],
)
def test_a_backend_that_is_neither_file_nor_redis_is_refused(settings, value):
    settings.RACE_WINDOW_BACKEND = value

    with pytest.raises(ImproperlyConfigured, match="RACE_WINDOW_BACKEND must be empty or 'file'") as error:
        race_window.check_settings()
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://lab:hunter2@127.0.0.1:6379/0", "redis://lab:***@127.0.0.1:6379/0"),
        ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://hunter2@127.0.0.1", "redis://***@127.0.0.1"),
        ("redis://lab:hun:ter2@127.0.0.1", "redis://lab:***@127.0.0.1"),
        ("redis://lab:hunter2@x@127.0.0.1", "redis://lab:***@127.0.0.1"),
        ("redis://lab:hunter2#x@127.0.0.1", "redis://lab:***@127.0.0.1"),
        ("redis:/lab:hunter2@127.0.0.1", "redis:/lab:***@127.0.0.1"),
        ("lab:hunter2@127.0.0.1", "lab:***@127.0.0.1"),
        ("redis://127.0.0.1:6379/0?password=hunter2", "redis://127.0.0.1:6379/0"),
        ("redis://[::1", "redis://[::1"),
    ],
)
def test_a_url_is_shown_with_its_password_masked_however_malformed(url, shown):
    assert redis_backend.describe(url) == shown


def test_a_redis_that_does_not_answer_is_refused_at_start_up(settings):
    settings.RACE_WINDOW_BACKEND = f"redis://:hunter2@127.0.0.1:{free_port()}/0"

    with pytest.raises(
        ImproperlyConfigured, match=r"Redis at redis://:\*\*\*@127.0.0.1:.* does not answer"
    ) as error:
        race_window.check_settings()
    assert "hunter2" not in str(error.value)


def test_a_redis_older_than_6_is_refused_at_start_up(settings, monkeypatch):
    """Its BLPOP refuses the barrier's fractional timeouts: every held request would fail."""
    require_redis()
    settings.RACE_WINDOW_BACKEND = REDIS_URL
    monkeypatch.setattr(redis.Redis, "info", lambda client, section=None: {"redis_version": "5.0.14"})

    with pytest.raises(ImproperlyConfigured, match="runs Redis 5.0.14, but it needs 6.0 or later"):
        race_window.check_settings()


@pytest.mark.parametrize(
    ("version", "supported"),
    [("5.0.14", False), ("6.0.0", True), ("7.0.15", True), ("10.2", True), ("unknown", False)],
)
def test_redis_6_or_later_is_supported(version, supported):
    assert redis_backend.redis_version_supported(version) is supported


def test_the_file_backend_never_imports_redis():
    """redis-py costs every process a fifth of a second at start-up."""
    modules = subprocess.run(
        [
            sys.executable, "-c",
            "import sys, django; django.setup(); from racelab.racewindow import barrier; "
            "barrier.current_backend(); "
            "print(sorted(name for name in sys.modules if name.split('.')[0] == 'redis'))",
        ],
        cwd=PROJECT_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "bank.settings", "RACE_WINDOW_BACKEND": "file"},
        capture_output=True,
        text=True,
        timeout=JOIN_SECONDS,
        check=True,
    )  # fmt: skip

    assert modules.stdout.strip() == "[]", modules.stderr


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
