"""The burst driver: last-byte synchronisation with nothing but the standard library.

For each burst it opens one connection per request and sends every request but its final byte.
The body is a form, so the server cannot finish reading any of them: it holds them all. After a
short pause for the server to take them in, every final byte goes out in one tight loop with
TCP_NODELAY, so the requests complete at the server within microseconds of one another, where
ab's start up to milliseconds apart. What each request got back is recorded (ok, refused or
indeterminate, as the checker expects) with its client-side times.

The three phases (``prime``, ``release``, ``collect``) are public: a Locust worker runs them on its
share of a burst synchronised across machines (racelab/loadgen/locust/worker.py).

Nothing here imports Django: the driver only talks HTTP to the lab.
"""

import json
import os
import resource
import selectors
import socket
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from racelab.loadgen.errors import LoadError
from racelab.loadgen.login import SessionCookies
from racelab.loadgen.outcomes import Outcome
from racelab.loadgen.target import LoadRequest, Target

# Long enough for every sync worker to accept its connection, parse the headers and block
# reading the body; short enough to be noise beside the rest of a trial.
DEFAULT_SETTLE_SECONDS = 0.1
DEFAULT_RESPONSE_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 1 << 20
# File descriptors kept free for everything else the process has open.
SPARE_FILE_DESCRIPTORS = 64
# How much of each 2xx answer a history keeps: enough for a short answer (a new balance, an id),
# not a page.
ANSWER_CHARACTERS = 200

_RECV_BYTES = 65_536
_HEAD_END = b"\r\n\r\n"


def answer_text(body: bytes | str | None) -> str:
    """What a history keeps of an answer's body: its first ANSWER_CHARACTERS, as text."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return (body or "")[:ANSWER_CHARACTERS].strip()


@dataclass(frozen=True)
class BurstSession:
    """A logged-in user; each has its own account, so several make a multi-account run."""

    username: str
    cookies: SessionCookies


@dataclass(frozen=True)
class RequestRecord:
    """What one request got back. Times are epoch seconds taken on the client."""

    burst: int
    index: int
    username: str
    outcome: Outcome
    status: int | None
    # A 2xx answer's body, as text, cut to ANSWER_CHARACTERS (the bank's: the new balance).
    answer: str | None
    primed_at: float | None
    sent_at: float | None
    received_at: float | None
    error: str | None = None


@dataclass(frozen=True)
class BurstRun:
    # Request i sent posts[i % len(posts)].
    posts: tuple[LoadRequest, ...]
    burst_size: int
    records: list[RequestRecord]
    started_at: float
    finished_at: float
    # Whether every release loop ran at real-time priority (see _undisturbed).
    realtime_release: bool = False

    @property
    def requests(self) -> int:
        return len(self.records)

    @property
    def bursts(self) -> int:
        return len({record.burst for record in self.records})

    def outcomes(self, *, username: str | None = None) -> Counter:
        return Counter(
            record.outcome for record in self.records if username is None or record.username == username
        )

    @property
    def statuses(self) -> Counter:
        return Counter(record.status for record in self.records if record.status is not None)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    @property
    def requests_per_second(self) -> float:
        elapsed = self.finished_at - self.started_at
        return self.requests / elapsed if elapsed > 0 else 0.0

    @property
    def release_spreads(self) -> list[float]:
        """Per burst, seconds from the first final byte sent to the last."""
        sent: dict[int, list[float]] = {}
        for record in self.records:
            if record.sent_at is not None:
                sent.setdefault(record.burst, []).append(record.sent_at)
        return [max(times) - min(times) for times in sent.values() if len(times) > 1]

    @property
    def latencies(self) -> list[float]:
        """Seconds from each final byte sent to its whole answer received."""
        return [
            record.received_at - record.sent_at
            for record in self.records
            if record.received_at is not None and record.sent_at is not None
        ]


def form_request(
    *, target: Target, cookies: SessionCookies, post: LoadRequest, run_token: str | None = None
) -> bytes:
    """The raw HTTP/1.1 request (the post's method), keep-alive, with a body the server must
    wait for to its last byte; with ``run_token``, sent as X-Lab-Run so the server stamps the
    request's timings."""
    # The padding is the byte held back: should the request ever reach the server without it,
    # the body still reads the same ("amount=10" cut short would otherwise read "amount=1").
    body = post.padded_body
    host = f"[{target.host}]" if ":" in target.host else target.host
    head = (
        f"{post.method} {post.path_and_query} HTTP/1.1\r\n"
        f"Host: {host}:{target.port}\r\n"
        + (f"Cookie: {cookies.cookie_header}\r\n" if cookies.cookie_header else "")
        + f"{cookies.csrf_header}\r\n"
        + (f"X-Lab-Run: {run_token}\r\n" if run_token else "")
        + "".join(f"{name}: {value}\r\n" for name, value in post.headers)
        + f"Content-Type: {post.content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: keep-alive\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


def run_bursts(
    *,
    target: Target,
    sessions: Sequence[BurstSession],
    posts: Sequence[LoadRequest],
    requests: int,
    burst_size: int,
    response_timeout: float = DEFAULT_RESPONSE_TIMEOUT_SECONDS,
    settle: float = DEFAULT_SETTLE_SECONDS,
    run_token: str | None = None,
) -> BurstRun:
    """Send ``requests`` forms in bursts of ``burst_size``, the users taking turns, and the
    ``posts`` too: request i sends ``posts[i % len(posts)]``, so every burst of two or more mixes
    them (two different requests racing, such as two PATCHes of different fields).

    Bursts go one after another; each waits at most ``response_timeout`` for its answers, so a
    run is bounded in time as well as in count.
    """
    if not sessions or not posts:
        raise ValueError("run_bursts needs at least one logged-in session and one form to send")
    if requests < 1 or burst_size < 1:
        raise ValueError(f"requests and burst_size must be positive, not {requests} and {burst_size}")
    _check_file_descriptors(burst_size=burst_size)
    payloads = {
        (session.username, number): form_request(
            target=target, cookies=session.cookies, post=post, run_token=run_token
        )
        for session in sessions
        for number, post in enumerate(posts)
    }
    records: list[RequestRecord] = []
    realtime = []
    pool = ConnectionPool()
    started_at = time.time()
    try:
        for burst, first in enumerate(range(0, requests, burst_size)):
            size = min(burst_size, requests - first)
            exchanges = [
                Exchange(
                    burst=burst,
                    index=first + slot,
                    username=sessions[slot % len(sessions)].username,
                    target=target,
                    payload=payloads[sessions[slot % len(sessions)].username, (first + slot) % len(posts)],
                )
                for slot in range(size)
            ]
            prime(exchanges, pool=pool)
            time.sleep(settle)
            realtime.append(release(exchanges))
            collect(exchanges, pool=pool, response_timeout=response_timeout)
            records.extend(exchange.record() for exchange in exchanges)
    finally:
        pool.close()
    return BurstRun(
        posts=tuple(posts),
        burst_size=burst_size,
        records=records,
        started_at=started_at,
        finished_at=time.time(),
        realtime_release=all(realtime),
    )


def history_document(run: BurstRun, *, target: Target) -> dict:
    """The run's per-request history, as ``save_history`` writes it."""
    outcomes = run.outcomes()
    return {
        "driver": "burst",
        "target": target.base_url,
        "method": run.posts[0].method,
        "path": run.posts[0].path,
        "query": dict(run.posts[0].query),
        # Request i sent forms[i % len(forms)].
        "forms": [dict(post.fields) for post in run.posts],
        "burst_size": run.burst_size,
        "requests": run.requests,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "realtime_release": run.realtime_release,
        "outcomes": {outcome.value: outcomes[outcome] for outcome in Outcome},
        "history": [asdict(record) for record in run.records],
    }


def save_history(run: BurstRun, *, path: Path, target: Target) -> None:
    """Write the run's per-request history as JSON, for people and for the checker's tests."""
    path.write_text(json.dumps(history_document(run, target=target), indent=2) + "\n")


def _check_file_descriptors(*, burst_size: int) -> None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and burst_size + SPARE_FILE_DESCRIPTORS > soft:
        raise LoadError(
            f"A burst of {burst_size} needs {burst_size} open connections, but this process may "
            f"open only {soft} files: raise the limit (ulimit -n) or use a smaller -c."
        )


@dataclass
class Exchange:
    """One request's connection and what came back on it, while its burst is in flight."""

    burst: int
    index: int
    username: str
    target: Target
    payload: bytes
    sock: socket.socket | None = None
    response: "_Response" = field(default_factory=lambda: _Response())
    primed_at: float | None = None
    sent_at: float | None = None
    received_at: float | None = None
    bytes_sent: bool = False
    error: str | None = None

    @property
    def live(self) -> bool:
        return self.sock is not None and self.error is None

    def fail(self, message: str) -> None:
        self.error = message

    def record(self) -> RequestRecord:
        status = self.response.status if self.response.complete else None
        outcome = outcome_of(status=status, sent=self.bytes_sent)
        return RequestRecord(
            burst=self.burst,
            index=self.index,
            username=self.username,
            outcome=outcome,
            status=status,
            answer=self.response.answer if outcome == Outcome.OK else None,
            primed_at=self.primed_at,
            sent_at=self.sent_at,
            received_at=self.received_at,
            error=self.error,
        )


def outcome_of(*, status: int | None, sent: bool) -> Outcome:
    """What a client knows of a request from its answer's status (None: no whole answer) and
    whether any of it was sent: the rules every driver records by."""
    if status is not None and 200 <= status < 300:
        return Outcome.OK
    if status is not None and 400 <= status < 500:
        return Outcome.REFUSED
    if status is None and not sent:
        # Nothing reached the server, so nothing can have happened there.
        return Outcome.REFUSED
    return Outcome.INDETERMINATE


def prime(exchanges: list[Exchange], *, pool: "ConnectionPool") -> None:
    """The first phase of a burst: connect, and send every request but its final byte. The
    server then holds each one, reading a body it cannot finish."""
    for exchange in exchanges:
        try:
            exchange.sock = pool.take(exchange.target)
        except OSError as error:
            exchange.fail(f"connect: {error}")
    for exchange in exchanges:
        if not exchange.live:
            continue
        try:
            exchange.bytes_sent = True
            exchange.sock.sendall(exchange.payload[:-1])
            exchange.primed_at = time.time()
        except OSError as error:
            exchange.fail(f"send: {error}")


def release(exchanges: list[Exchange]) -> bool:
    """The second phase: every primed request's final byte, in one tight loop; True if the loop
    ran at real-time priority."""
    primed = [exchange for exchange in exchanges if exchange.live]
    for exchange in primed:
        # Non-blocking: Python then sends straight away instead of polling the socket first.
        exchange.sock.setblocking(False)
    # The release: nothing but one send per connection between the first final byte and the last.
    with _undisturbed() as realtime:
        for exchange in primed:
            try:
                exchange.sock.send(exchange.payload[-1:])
                exchange.sent_at = time.time()
            except OSError as error:
                exchange.fail(f"send: {error}")
    return realtime


def collect(exchanges: list[Exchange], *, pool: "ConnectionPool", response_timeout: float) -> None:
    """The last phase: read every released request's answer, waiting at most ``response_timeout``;
    give kept-alive connections back to ``pool`` and close the others."""
    _collect(
        [exchange for exchange in exchanges if exchange.live and exchange.sent_at is not None],
        response_timeout=response_timeout,
    )
    for exchange in exchanges:
        if exchange.sock is None:
            continue
        if exchange.live and exchange.response.complete and exchange.response.keep_alive:
            pool.give(exchange.target, exchange.sock)
        else:
            exchange.sock.close()


@contextmanager
def _undisturbed() -> Iterator[bool]:
    """Run the release loop at the lowest real-time priority, where the system allows it.

    Each final byte wakes a server worker, and on a machine with few cores the woken workers
    take the CPU from the sender between two sends: a 20-request release then takes
    milliseconds instead of a fraction of one. SCHED_FIFO keeps them waiting for the loop's
    fraction of a millisecond. Without the privilege (CAP_SYS_NICE) this changes nothing.
    """
    try:
        policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(os.sched_get_priority_min(os.SCHED_FIFO)))
    except (AttributeError, OSError):
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, policy, param)


def _collect(exchanges: list[Exchange], *, response_timeout: float) -> None:
    deadline = time.monotonic() + response_timeout
    waiting = {exchange.sock.fileno(): exchange for exchange in exchanges}
    with selectors.DefaultSelector() as selector:
        for exchange in exchanges:
            selector.register(exchange.sock, selectors.EVENT_READ)
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for exchange in waiting.values():
                    exchange.fail(f"no answer within {response_timeout:g} s")
                return
            for key, _events in selector.select(timeout=remaining):
                exchange = waiting[key.fd]
                done = _receive(exchange)
                if done:
                    selector.unregister(exchange.sock)
                    del waiting[key.fd]


def _receive(exchange: Exchange) -> bool:
    """Read what is there; True once the exchange is over, answered or not."""
    try:
        data = exchange.sock.recv(_RECV_BYTES)
    except BlockingIOError:
        return False
    except OSError as error:
        exchange.fail(f"receive: {error}")
        return True
    if not data:
        exchange.response.close()
        if not exchange.response.complete:
            exchange.fail("connection closed before a whole answer arrived")
        else:
            exchange.received_at = time.time()
        return True
    try:
        exchange.response.feed(data)
    except ValueError as error:
        exchange.fail(f"bad answer: {error}")
        return True
    if exchange.response.complete:
        exchange.received_at = time.time()
        return True
    return False


class _Response:
    """An HTTP/1.x response read incrementally: Content-Length, chunked, or until close."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.status: int | None = None
        self.version = ""
        self.headers: dict[str, str] = {}
        self.body = b""
        self.complete = False
        self._body_start: int | None = None

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > MAX_RESPONSE_BYTES:
            raise ValueError(f"more than {MAX_RESPONSE_BYTES} bytes")
        if self._body_start is None:
            end = self.buffer.find(_HEAD_END)
            if end < 0:
                return
            self._parse_head(bytes(self.buffer[:end]).decode("latin-1"))
            self._body_start = end + len(_HEAD_END)
        self._try_finish(at_eof=False)

    def close(self) -> None:
        if self._body_start is not None and not self.complete:
            self._try_finish(at_eof=True)

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"

    @property
    def answer(self) -> str:
        return answer_text(self.body)

    def _parse_head(self, head: str) -> None:
        status_line, *lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if (
            len(parts) < 2
            or not parts[0].startswith("HTTP/")
            or not (parts[1].isascii() and parts[1].isdigit())
        ):
            raise ValueError(f"not an HTTP status line: {status_line[:80]!r}")
        self.version, self.status = parts[0], int(parts[1])
        for line in lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def _try_finish(self, *, at_eof: bool) -> None:
        body = bytes(self.buffer[self._body_start :])
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            decoded = _decode_chunked(body)
            if decoded is not None:
                self.body, self.complete = decoded, True
        elif "content-length" in self.headers:
            length = int(self.headers["content-length"])
            if len(body) >= length:
                self.body, self.complete = body[:length], True
        elif at_eof or self.status in (204, 304):
            self.body, self.complete = body, True


def _decode_chunked(data: bytes) -> bytes | None:
    """The body of a complete chunked encoding, or None while more is to come."""
    body = bytearray()
    position = 0
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(data[position:line_end].split(b";")[0], 16)
        position = line_end + 2
        if size == 0:
            trailer = data[position:]
            return bytes(body) if trailer.startswith(b"\r\n") or _HEAD_END in trailer else None
        if len(data) < position + size + 2:
            return None
        body += data[position : position + size]
        position += size + 2


class ConnectionPool:
    """Connections kept alive between bursts when the server allows it (Gunicorn's sync workers
    do not: they close every connection after one answer, so each burst opens new ones), per
    target."""

    def __init__(self) -> None:
        self.idle: dict[Target, list[socket.socket]] = {}

    def take(self, target: Target) -> socket.socket:
        idle = self.idle.get(target, [])
        while idle:
            sock = idle.pop()
            if _still_open(sock):
                sock.setblocking(True)
                sock.settimeout(CONNECT_TIMEOUT_SECONDS)
                return sock
            sock.close()
        sock = socket.create_connection((target.host, target.port), timeout=CONNECT_TIMEOUT_SECONDS)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def give(self, target: Target, sock: socket.socket) -> None:
        self.idle.setdefault(target, []).append(sock)

    def close(self) -> None:
        for socks in self.idle.values():
            for sock in socks:
                sock.close()
        self.idle.clear()


def _still_open(sock: socket.socket) -> bool:
    """An idle keep-alive connection is readable only once the server has closed it."""
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        return not selector.select(timeout=0)
