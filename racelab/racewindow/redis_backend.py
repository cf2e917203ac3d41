"""The race window's barrier in Redis: for app servers on several hosts.

The same barrier as racelab/racewindow/file_backend.py, kept where every host reaches it:

- per resource, a hash (its epoch, window number, arrivals, time of the last arrival) that one
  Lua script updates atomically as each request arrives, stamped with Redis's own clock
  (``TIME``), so hosts whose clocks disagree still agree on the timeout;
- the request that fills the window, or the first waiter to find the timeout passed, closes it
  and pushes one token per other arrival into the window's gate, a list the others block on (``BLPOP``,
  no CPU while they wait). Every wait is bounded by the time left before the timeout and then
  checks the window again, so a waiter never waits forever, whoever died;
- the window's first party waits in slices of PROBE_SECONDS, and at each asks the database how
  many sessions wait on its locks (racelab/racewindow/lock_waits.py): once the arrived and the
  blocked make the parties, its check closes the window, serialized, and the state carries how
  many parties are still to come, each let straight on when it arrives;
- the armed document (parties, timeout, park points, who armed it) is a key with a lease: the
  arming process renews it from a thread while armed and deletes it on exit, so a crashed one's
  window expires within LEASE_SECONDS;
- per database, one hash of counters (held, windows, timeouts, serialized), and the counter the epochs come
  from, which arming does not clear: window numbers restart at 0 with each new state, so a
  waiter left over from an earlier arming tells the new window from its own by the epoch.

It needs Redis 6.0 or later (fractional ``BLPOP`` timeouts), a single node or a primary with
replicas (the scripts build the gate's key, which Redis Cluster forbids), and no eviction.

Every key starts with ``racewindow:`` and a namespace derived from the database's ENGINE and
NAME, not its address: hosts reach the same database by different addresses (a Unix socket on
one, an IP on another), and two labs on one Redis must never share a barrier.
"""

import hashlib
import json
import math
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import redis

from racelab.racewindow.window import BarrierStats, Passage, RaceWindow, RaceWindowError

SCHEMES = ("redis", "rediss")
KEY_PREFIX = "racewindow:"
LEASE_SECONDS = 3.0
RENEW_SECONDS = 1.0
# How long a resource's state, the counters and a window's leftover tokens outlive their last use.
STATE_TTL_MS = 3600 * 1000
GATE_TTL_MS = 60 * 1000
# A wait for the gate lasts until the timeout would close the window, and this much more, so the
# check that follows finds it due rather than a millisecond early.
WAIT_SLACK_SECONDS = 0.005
# How often a window's first party asks the database who waits on its locks.
PROBE_SECONDS = 0.005
CONNECT_TIMEOUT_SECONDS = 2.0
# Above the longest BLPOP (the longest window timeout), so only a Redis that went away trips it.
SOCKET_TIMEOUT_SECONDS = 20.0
# The lease's calls are short: one that takes longer than this is no use to a lease of 3 s, and
# disarming must not wait on a Redis that hangs for the long socket timeout above.
LEASE_CALL_TIMEOUT_SECONDS = 1.0
# Fractional BLPOP timeouts came with Redis 6.0: an older one refuses them ("timeout is not an
# integer"), and every held request would fail.
MIN_REDIS_VERSION = (6, 0)
SCAN_BATCH = 500
# A URL's scheme and the slashes after it; what follows, up to the last '@', is its userinfo.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/*")
_QUERY_OR_FRAGMENT = re.compile(r"[?#]")

LEASE_LOST = (
    "The race window's lease in Redis lapsed while it was armed (this process stalled for longer "
    "than the lease, or Redis lost the key): servers stopped holding part-way through, and another "
    "process may have armed the window and cleared its counters, so this run's figures cannot be "
    "trusted. Run it again; if it recurs, keep Redis from evicting keys (maxmemory-policy noeviction)."
)

_LUA_PRELUDE = """
local function now_ms()
    local time = redis.call('TIME')
    return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- Close window `window` of the resource KEYS[1]'s state `epoch`: one token in its gate for each
-- of the `waiting`, and counted in KEYS[2].
local function close(epoch, window, waiting, timed_out, gate_ttl_ms, state_ttl_ms)
    if waiting > 0 then
        local gate = KEYS[1] .. ':gate:' .. epoch .. ':' .. window
        for _ = 1, waiting do
            redis.call('RPUSH', gate, 1)
        end
        redis.call('PEXPIRE', gate, gate_ttl_ms)
    end
    redis.call('HINCRBY', KEYS[2], 'windows', 1)
    redis.call('HINCRBY', KEYS[2], 'timeouts', timed_out)
    redis.call('PEXPIRE', KEYS[2], state_ttl_ms)
end
"""

# KEYS: the resource's state, the counters, the counter of states. ARGV: parties, timeout (ms),
# gate TTL, state TTL. Returns {epoch, window, position, waits}: waits is 0 for the request that
# goes straight on (the last of the parties, or one that a serialized window carries).
_ARRIVE = (
    _LUA_PRELUDE
    + """
local parties, timeout = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
local state = redis.call('HMGET', KEYS[1], 'epoch', 'window', 'arrived', 'last', 'carry')
local epoch = tonumber(state[1])
local window, arrived, last = tonumber(state[2]) or 0, tonumber(state[3]) or 0, tonumber(state[4]) or 0
local carry = tonumber(state[5]) or 0
if not epoch then
    -- A new state (arming cleared the last one): an epoch no earlier state of the resource had, so
    -- a waiter from before never takes this state's window 0 for its own.
    epoch = redis.call('INCR', KEYS[3])
end
redis.call('PEXPIRE', KEYS[3], ARGV[4])
if not (now >= last and now - last <= timeout) then
    -- Whoever arrived last gave up long ago: close that window for any still waiting, and forget
    -- the parties a serialized window waited for that never came (refused, rolled back).
    if arrived > 0 then
        close(epoch, window, arrived, 1, ARGV[3], ARGV[4])
        window, arrived = window + 1, 0
    end
    carry = 0
end
redis.call('HINCRBY', KEYS[2], 'held', 1)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if carry > 0 then
    -- Counted already, while it was blocked on the lock of the window's first party.
    redis.call('HSET', KEYS[1], 'epoch', epoch, 'carry', carry - 1, 'last', now)
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
    return {epoch, window - 1, parties - carry + 1, 0}
end
local mine = window
arrived = arrived + 1
local position = arrived
local waits = 1
if position >= parties then
    close(epoch, window, arrived - 1, 0, ARGV[3], ARGV[4])
    window, arrived, waits = window + 1, 0, 0
end
redis.call('HSET', KEYS[1], 'epoch', epoch, 'window', window, 'arrived', arrived, 'last', now, 'carry', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {epoch, mine, position, waits}
"""
)

# KEYS: the resource's state, the counters. ARGV: epoch, window, timeout (ms), gate TTL, state TTL,
# parties, how many sessions wait on the caller's locks. Returns the ms left before the timeout
# closes the window, or 0 once it is closed (by the last party, by another waiter, by an arming
# that cleared its state, or by this call: the timeout passed, or the arrived and the blocked
# make the parties).
_CHECK = (
    _LUA_PRELUDE
    + """
local epoch, mine, timeout = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local parties, blocked = tonumber(ARGV[6]), tonumber(ARGV[7])
local state = redis.call('HMGET', KEYS[1], 'epoch', 'window', 'arrived', 'last')
if tonumber(state[1]) ~= epoch or tonumber(state[2]) ~= mine then
    return 0
end
local now, last, arrived = now_ms(), tonumber(state[4]), tonumber(state[3])
local left = last + timeout - now
if blocked > 0 and arrived + blocked >= parties then
    -- The parties still missing wait on our lock: they come one by one as it passes on, each
    -- straight through, and the carry expires a timeout after the last of them.
    close(epoch, mine, arrived - 1, 0, ARGV[4], ARGV[5])
    redis.call('HINCRBY', KEYS[2], 'serialized', 1)
    redis.call('HSET', KEYS[1], 'window', mine + 1, 'arrived', 0, 'carry', parties - arrived, 'last', now)
    return 0
end
if now >= last and left > 0 then
    return left
end
close(epoch, mine, arrived - 1, 1, ARGV[4], ARGV[5])
redis.call('HSET', KEYS[1], 'window', mine + 1, 'arrived', 0)
return 0
"""
)

# ARGV: the armed document, the lease (ms). Only the process that armed renews or releases.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def is_redis_url(value: str) -> bool:
    """redis:// or rediss://, and a database number if any, in ASCII digits (redis-py would quietly
    ignore one that is not a number, and use database 0)."""
    try:
        parts = urlsplit(value)
    except ValueError:  # an IPv6 address with its bracket left open, say
        return False
    database = parts.path.strip("/")
    return parts.scheme in SCHEMES and (database == "" or (database.isascii() and database.isdigit()))


def namespace(database: dict) -> str:
    """The key prefix of one lab database: its ENGINE and NAME, whatever address reaches it."""
    identity = "|".join(str(database.get(key) or "") for key in ("ENGINE", "NAME")).encode()
    return f"{KEY_PREFIX}{hashlib.sha256(identity).hexdigest()[:16]}:"


def describe(url: str) -> str:
    """``url`` as messages show it, its password masked (redis://user:***@host:6379/0), however
    malformed the rest: a mistyped URL (redis:/user:PASSWORD@host) still hides it."""
    credentials, at, location = url.rpartition("@")
    # Query arguments (?password=...) reach redis-py too: they are left out.
    location = _QUERY_OR_FRAGMENT.split(location, maxsplit=1)[0]
    if not at:
        return location
    scheme = _SCHEME.match(credentials)
    prefix = scheme.group() if scheme else ""
    user, colon, _ = credentials[len(prefix) :].partition(":")
    # user:password shows the user; a lone userinfo may be the password itself.
    return f"{prefix}{user}:***@{location}" if colon else f"{prefix}***@{location}"


def ping(url: str) -> None:
    """RaceWindowError unless the Redis at ``url`` answers and is recent enough."""
    try:
        version = _server_at(url).client.info("server")["redis_version"]
    except (redis.RedisError, ValueError, KeyError) as error:
        raise RaceWindowError(_unreachable(url, error)) from error
    if not redis_version_supported(str(version)):
        raise RaceWindowError(
            f"The race window's Redis at {describe(url)} (RACE_WINDOW_BACKEND) runs Redis {version}, "
            "but it needs 6.0 or later (its waits are fractions of a second): upgrade "
            "it, or point RACE_WINDOW_BACKEND at a newer one."
        )


def redis_version_supported(version: str) -> bool:
    """Whether a Redis of ``version`` (INFO's ``redis_version``, such as "7.0.15") will do."""
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    return major_minor >= MIN_REDIS_VERSION


@dataclass(frozen=True)
class RedisBackend:
    """The barriers of the database whose keys start with ``prefix``, in the Redis at ``url``."""

    url: str
    prefix: str
    # Set by the lease's renewer, should the lease lapse while this backend has the window armed.
    lease_lost: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    @contextmanager
    def arm(self, *, window: RaceWindow) -> Iterator[None]:
        document = json.dumps(
            {
                "parties": window.parties,
                "timeout": window.timeout,
                "at": window.at,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                # Tells this arming from a later one of the same process, should the lease lapse.
                "token": uuid.uuid4().hex,
            }
        )
        with self._answering():
            if not self._server.lease.set(self._armed_key, document, nx=True, px=_ms(LEASE_SECONDS)):
                raise RaceWindowError(self._held_by())
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew,
            kwargs={"document": document, "stop": stop},
            name="race-window-lease",
            daemon=True,
        )
        # Renewed from the start: clearing a large Redis may take longer than the lease.
        renewer.start()
        try:
            with self._answering():
                self._clear()
            yield
        finally:
            stop.set()
            # At most one renewal's call to wait for, even on a Redis that hangs (a daemon thread,
            # it would not hold up the process's exit either).
            renewer.join(timeout=CONNECT_TIMEOUT_SECONDS + LEASE_CALL_TIMEOUT_SECONDS)
            # Unreachable now, the lease runs out by itself.
            with suppress(redis.RedisError):
                self._server.release(keys=[self._armed_key], args=[document])
        if self.lease_lost.is_set():
            raise RaceWindowError(LEASE_LOST)

    def armed_window(self) -> RaceWindow | None:
        with self._answering():
            raw = self._server.client.get(self._armed_key)
        try:
            document = json.loads(raw)
            at = document.get("at")
            return RaceWindow(
                parties=int(document["parties"]),
                timeout=float(document["timeout"]),
                at=None if at is None else str(at),
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            return None

    def stats(self) -> BarrierStats:
        if self.lease_lost.is_set():
            raise RaceWindowError(LEASE_LOST)
        with self._answering():
            counters = self._server.client.hgetall(self._stats_key)
        held, windows, timeouts, serialized = (
            int(counters.get(name, 0)) for name in (b"held", b"windows", b"timeouts", b"serialized")
        )
        return BarrierStats(held=held, windows=windows, timeouts=timeouts, serialized=serialized)

    def hold(self, *, window: RaceWindow, resource: str, blocked: Callable[[], int] | None = None) -> Passage:
        started = time.monotonic()
        state_key = f"{self.prefix}resource:{hashlib.sha256(resource.encode()).hexdigest()[:16]}"
        keys = [state_key, self._stats_key]
        timeout_ms = _ms(window.timeout)
        with self._answering():
            epoch, mine, position, waits = self._server.arrive(
                keys=[*keys, self._epochs_key], args=[window.parties, timeout_ms, GATE_TTL_MS, STATE_TTL_MS]
            )
            if not waits:
                return Passage(window=mine, position=position, waited=0.0)
            gate, left_ms = f"{state_key}:gate:{epoch}:{mine}", timeout_ms
            watching = position == 1 and blocked is not None
            while left_ms > 0:
                wait = min(left_ms / 1000, PROBE_SECONDS) if watching else left_ms / 1000
                if self._server.client.blpop([gate], timeout=wait + WAIT_SLACK_SECONDS):
                    break
                probe = [window.parties, blocked() if watching else 0]
                left_ms = self._server.check(
                    keys=keys, args=[epoch, mine, timeout_ms, GATE_TTL_MS, STATE_TTL_MS, *probe]
                )
        return Passage(window=mine, position=position, waited=time.monotonic() - started)

    @property
    def _server(self) -> "_Server":
        return _server_at(self.url)

    @property
    def _armed_key(self) -> str:
        return f"{self.prefix}armed"

    @property
    def _stats_key(self) -> str:
        return f"{self.prefix}stats"

    @property
    def _epochs_key(self) -> str:
        return f"{self.prefix}epochs"

    @contextmanager
    def _answering(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as error:
            raise RaceWindowError(_unreachable(self.url, error)) from error

    def _held_by(self) -> str:
        try:
            holder = json.loads(self._server.lease.get(self._armed_key))
            who = f"Process {holder['pid']} on {holder['host']}"
        except (KeyError, TypeError, ValueError):
            who = "Another process"
        return (
            f"{who} has armed the race window for this database already: wait for it to finish, or "
            f"stop it (a process that died frees it within {LEASE_SECONDS:g} s)."
        )

    def _clear(self) -> None:
        """What earlier windows of this database left: their resources, gates and counters (not
        the counter of states, which keeps a new state's windows apart from a cleared one's)."""
        client = self._server.client
        batch = []
        for key in client.scan_iter(match=f"{self.prefix}resource:*", count=SCAN_BATCH):
            batch.append(key)
            if len(batch) == SCAN_BATCH:
                client.unlink(*batch)
                batch.clear()
        client.unlink(self._stats_key, *batch)

    def _renew(self, *, document: str, stop: threading.Event) -> None:
        while not stop.wait(RENEW_SECONDS):
            try:
                renewed = self._server.renew(keys=[self._armed_key], args=[document, _ms(LEASE_SECONDS)])
            except redis.RedisError:
                continue  # Redis away for a moment: try again before the lease runs out
            if not renewed and not stop.is_set():
                # The lease lapsed (this process stalled longer than it, or Redis lost the key):
                # servers stopped holding, and another process may have armed and cleared the
                # counters. Said when the counters are read, and on disarming.
                self.lease_lost.set()
                return


class _Server:
    """Two clients (their connection pools are thread-safe and survive a fork) and the scripts:
    one for the barrier, whose waits are long, one for the lease, whose calls must be short."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS, socket_timeout=SOCKET_TIMEOUT_SECONDS
        )
        self.lease = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS, socket_timeout=LEASE_CALL_TIMEOUT_SECONDS
        )
        self.arrive = self.client.register_script(_ARRIVE)
        self.check = self.client.register_script(_CHECK)
        self.renew = self.lease.register_script(_RENEW)
        self.release = self.lease.register_script(_RELEASE)


_servers: dict[str, _Server] = {}
_servers_lock = threading.Lock()


def _server_at(url: str) -> _Server:
    # Read without the lock first: a process forked while another thread held it (creating a
    # server) would otherwise block on it for ever.
    server = _servers.get(url)
    if server is not None:
        return server
    with _servers_lock:
        if url not in _servers:
            _servers[url] = _Server(url)
        return _servers[url]


def _ms(seconds: float) -> int:
    return math.ceil(seconds * 1000)


def _unreachable(url: str, error: Exception) -> str:
    return (
        f"The race window's Redis at {describe(url)} (RACE_WINDOW_BACKEND) does not answer, or "
        f"refuses us ({error}): start it, check its password, or point RACE_WINDOW_BACKEND at one "
        "that runs."
    )
