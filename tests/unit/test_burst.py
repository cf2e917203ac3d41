"""The burst driver against a tiny loopback server that notes when each request's headers and
body arrived: the last byte is held until every request of the burst is primed."""

import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from experiment.requests import withdrawal_post
from labserver.lab import LOOPBACK
from racelab.loadgen.burst import (
    BurstSession,
    _decode_chunked,
    _Response,
    form_request,
    run_bursts,
    save_history,
)
from racelab.loadgen.login import SessionCookies
from racelab.loadgen.outcomes import Outcome
from racelab.loadgen.target import LoadRequest, Target

pytestmark = pytest.mark.database_independent

COOKIES = SessionCookies(csrftoken="c" * 32, sessionid="s" * 32)
SETTLE = 0.05


@dataclass
class Seen:
    headers_at: float
    body_at: float | None = None
    body: bytes = b""


@dataclass
class Recorder:
    """What the server saw, and how it answers: ``answer(n)`` gives the raw reply to request n."""

    answer: Callable[[int], bytes | None]
    keep_alive: bool = False
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _ok(balance: int, *, keep_alive: bool = False) -> bytes:
    body = str(balance).encode()
    connection = "keep-alive" if keep_alive else "close"
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n%s" % (
        len(body),
        connection.encode(),
        body,
    )


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        recorder: Recorder = self.server.recorder
        with recorder.lock:
            recorder.connections += 1
        stream = self.request.makefile("rb")
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = stream.readline()
                if not line:
                    return
                head += line
            seen = Seen(headers_at=time.time())
            length = int(
                next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1]
            )
            seen.body = stream.read(length)
            seen.body_at = time.time()
            with recorder.lock:
                recorder.seen.append(seen)
                number = len(recorder.seen)
            reply = recorder.answer(number)
            if reply is None:
                time.sleep(1)  # never answer within the client's timeout
                return
            self.request.sendall(reply)
            if not recorder.keep_alive:
                return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def recording_server(recorder: Recorder) -> Iterator[Target]:
    server = _Server((LOOPBACK, 0), _Handler)
    server.recorder = recorder
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Target("http", LOOPBACK, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _fire(target, *, requests, burst_size, users=("alice",), timeout=5.0):
    sessions = [BurstSession(username=name, cookies=COOKIES) for name in users]
    return run_bursts(
        target=target,
        sessions=sessions,
        posts=(withdrawal_post(strategy="naive", amount=7),),
        requests=requests,
        burst_size=burst_size,
        response_timeout=timeout,
        settle=SETTLE,
    )


def test_a_run_of_two_forms_sends_them_in_turn_in_every_burst():
    recorder = Recorder(answer=lambda n: _ok(n))
    forms = (
        LoadRequest(
            path="/edit/", query=(("strategy", "naive"),), fields=(("city", "Lisbon"),), method="PATCH"
        ),
        LoadRequest(path="/edit/", query=(("strategy", "naive"),), fields=(("name", "Ada"),), method="PATCH"),
    )
    with recording_server(recorder) as target:
        run = run_bursts(
            target=target,
            sessions=[BurstSession(username="alice", cookies=COOKIES)],
            posts=forms,
            requests=5,
            burst_size=3,
            response_timeout=5.0,
            settle=SETTLE,
        )

    assert [record.outcome for record in run.records] == [Outcome.OK] * 5
    # Request i sent form i % 2, the second burst going on where the first left off.
    assert sorted(seen.body for seen in recorder.seen) == [b"city=Lisbon&"] * 3 + [b"name=Ada&"] * 2
    assert run.posts == forms


def test_each_burst_is_released_only_once_every_request_is_primed():
    recorder = Recorder(answer=lambda n: _ok(1_000_000 - n))
    with recording_server(recorder) as target:
        run = _fire(target, requests=12, burst_size=4)

    assert [record.outcome for record in run.records] == [Outcome.OK] * 12
    assert sorted(int(record.answer) for record in run.records) == [1_000_000 - n for n in range(12, 0, -1)]
    assert run.bursts == 3 and recorder.connections == 12  # no keep-alive: new connections each burst
    assert all(seen.body == b"amount=7&" for seen in recorder.seen)
    for burst in range(3):
        records = [record for record in run.records if record.burst == burst]
        # Every final byte left after every request of the burst was primed...
        assert max(r.primed_at for r in records) < min(r.sent_at for r in records)
        # ...and the release itself is one tight loop.
        assert max(r.sent_at for r in records) - min(r.sent_at for r in records) < SETTLE / 2
    # No body was whole at the server before its burst was primed and released: the server was
    # holding every request for its last byte.
    bodies = sorted(seen.body_at for seen in recorder.seen)
    for burst in range(3):
        records = [record for record in run.records if record.burst == burst]
        assert min(bodies[4 * burst : 4 * burst + 4]) > max(record.primed_at for record in records)


def test_keep_alive_connections_are_reused_between_bursts():
    recorder = Recorder(answer=lambda n: _ok(n, keep_alive=True), keep_alive=True)
    with recording_server(recorder) as target:
        run = _fire(target, requests=9, burst_size=3)

    assert run.outcomes()[Outcome.OK] == 9
    assert recorder.connections == 3


def test_users_take_turns_within_each_burst():
    recorder = Recorder(answer=lambda n: _ok(n))
    with recording_server(recorder) as target:
        run = _fire(target, requests=6, burst_size=3, users=("alice", "bob"))

    assert [record.username for record in run.records] == ["alice", "bob", "alice"] * 2
    assert run.outcomes(username="alice")[Outcome.OK] == 4
    assert run.outcomes(username="bob")[Outcome.OK] == 2


def test_answers_are_classified_as_the_checker_expects():
    replies = {
        1: _ok(5),
        2: b"HTTP/1.1 409 Conflict\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfunds",
        3: b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        4: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12",  # cut short by the close
        5: None,
    }
    recorder = Recorder(answer=replies.__getitem__)
    with recording_server(recorder) as target:
        started = time.monotonic()
        run = _fire(target, requests=5, burst_size=5, timeout=0.5)
        elapsed = time.monotonic() - started

    by_status = {record.status: record for record in run.records}
    assert by_status[200].outcome == Outcome.OK and by_status[200].answer == "5"
    assert by_status[409].outcome == Outcome.REFUSED and by_status[409].answer is None
    assert by_status[500].outcome == Outcome.INDETERMINATE
    unanswered = [record for record in run.records if record.status is None]
    assert [record.outcome for record in unanswered] == [Outcome.INDETERMINATE] * 2
    assert {record.error for record in unanswered} == {
        "connection closed before a whole answer arrived",
        "no answer within 0.5 s",
    }
    assert run.server_errors == 1
    assert elapsed < 3  # bounded by the response timeout, not by the silent server


def test_a_request_never_sent_is_a_failure_not_an_unknown():
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    run = _fire(Target("http", LOOPBACK, port), requests=2, burst_size=2)

    assert [record.outcome for record in run.records] == [Outcome.REFUSED, Outcome.REFUSED]
    assert all(record.error.startswith("connect:") for record in run.records)


def test_history_file_lists_every_request(tmp_path):
    recorder = Recorder(answer=lambda n: _ok(100 - n))
    with recording_server(recorder) as target:
        run = _fire(target, requests=4, burst_size=2)
        save_history(run, path=tmp_path / "history.json", target=target)

    document = json.loads((tmp_path / "history.json").read_text())
    assert document["driver"] == "burst"
    assert document["outcomes"] == {Outcome.OK: 4, Outcome.REFUSED: 0, Outcome.INDETERMINATE: 0}
    assert [entry["index"] for entry in document["history"]] == [0, 1, 2, 3]
    assert {int(entry["answer"]) for entry in document["history"]} == {96, 97, 98, 99}
    assert all(entry["primed_at"] < entry["sent_at"] < entry["received_at"] for entry in document["history"])


def test_the_request_holds_back_a_harmless_last_byte():
    raw = form_request(
        target=Target("http", "::1", 8001),
        cookies=COOKIES,
        post=withdrawal_post(strategy="locking", amount=10),
    )
    head, body = raw.split(b"\r\n\r\n")

    assert head.startswith(b"POST /accounts/withdraw/?strategy=locking HTTP/1.1\r\n")
    assert b"\r\nHost: [::1]:8001\r\n" in head
    assert f"\r\nX-CSRFToken: {COOKIES.csrftoken}\r\n".encode() in head
    assert b"\r\nContent-Length: 10\r\n" in head
    # Cut short by its last byte, the body still asks for the same amount.
    assert body == b"amount=10&" and raw[-1:] == b"&"


def test_a_form_of_another_method_goes_out_with_it():
    patch = LoadRequest(
        path="/scenarios/profile/edit/",
        query=(("strategy", "naive"),),
        fields=(("city", "Lisbon"),),
        method="PATCH",
    )
    raw = form_request(target=Target("http", "127.0.0.1", 8001), cookies=COOKIES, post=patch)
    assert raw.startswith(b"PATCH /scenarios/profile/edit/?strategy=naive HTTP/1.1\r\n")
    assert raw.endswith(b"\r\n\r\ncity=Lisbon&")


def test_a_json_body_and_the_users_headers_go_out_with_the_request():
    put = LoadRequest(path="/api/cart/1/", method="PUT", json='{"qty": 2}', headers=(("If-Match", "7"),))
    raw = form_request(target=Target("http", "127.0.0.1", 8001), cookies=COOKIES, post=put)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"PUT /api/cart/1/ HTTP/1.1\r\n")
    assert b"\r\nIf-Match: 7\r\n" in head and b"\r\nContent-Type: application/json\r\n" in head
    # The byte held back is a space after the JSON, which any parser skips.
    assert body == b'{"qty": 2} ' and b"Content-Length: 11\r\n" in head


@pytest.mark.parametrize(
    ("chunks", "body", "keep_alive"),
    [
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", b"12", b"3"], b"123", True),
        (
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n12\r\n", b"1\r\n3\r\n0\r\n\r\n"],
            b"123",
            True,
        ),
        ([b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n7"], b"7", False),
        ([b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"], b"", False),
    ],
)
def test_responses_are_read_incrementally(chunks, body, keep_alive):
    response = _Response()
    for chunk in chunks[:-1]:
        response.feed(chunk)
        assert not response.complete
    response.feed(chunks[-1])

    assert response.complete
    assert response.body == body
    assert response.keep_alive is keep_alive


def test_a_close_delimited_response_ends_at_the_close():
    response = _Response()
    response.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n42")
    assert not response.complete
    response.close()
    assert response.complete and response.answer == "42"


def test_garbage_is_not_an_http_answer():
    with pytest.raises(ValueError, match="not an HTTP status line"):
        _Response().feed(b"SSH-2.0-OpenSSH\r\n\r\n")
    assert _decode_chunked(b"3\r\nab") is None
