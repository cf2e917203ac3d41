"""A slow client holds a sync worker; Gunicorn's timeout must kill and replace that worker.

One worker and a two-second timeout: while the slow client holds the only worker, a normal
request waits in the listen queue, and it is answered only once Gunicorn frees the worker.
"""

import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from tests.hardening.lab_http import request
from tests.helpers import lab_snapshot, log_in_lab_user
from tests.tcp_state import wait_until_read_by_server

pytestmark = pytest.mark.e2e

TIMEOUT_SECONDS = 2
# Gunicorn's arbiter looks at its workers about once a second, then a new worker must start.
FREED_WITHIN_SECONDS = TIMEOUT_SECONDS + 10


@pytest.fixture(scope="module")
def slow_server(module_lab):
    with module_lab.serve(workers=1, env={"GUNICORN_TIMEOUT": str(TIMEOUT_SECONDS)}) as server:
        yield server


@pytest.fixture(scope="module")
def session(slow_server, tmp_path_factory):
    return log_in_lab_user(slow_server, tmp_path_factory.mktemp("login"))


def slow_withdrawal_head(url: str, session) -> bytes:
    """A withdrawal whose headers promise a body that never comes."""
    return (
        f"POST /accounts/withdraw/?strategy=locking HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\n"
        f"Cookie: {session.cookie_header}\r\nX-CSRFToken: {session.csrftoken}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 8\r\n\r\namou"
    ).encode()


SLOW_CLIENTS = {
    # Headers trickle in and never end: the worker is stuck in Gunicorn's parser.
    "slow-headers": lambda url, session: (
        f"GET /accounts/withdraw/ HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\n".encode()
    ),
    # Headers complete, body half sent: the worker is stuck in Django reading the form.
    "slow-body": slow_withdrawal_head,
}


@pytest.mark.parametrize("opening", SLOW_CLIENTS)
def test_gunicorn_timeout_frees_the_worker_a_slow_client_holds(module_lab, slow_server, session, opening):
    before = lab_snapshot(module_lab)
    parts = urlsplit(slow_server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=FREED_WITHIN_SECONDS + 5) as slow:
        slow.sendall(SLOW_CLIENTS[opening](slow_server.url, session))
        # The only worker has taken the slow connection and waits for the rest of it.
        wait_until_read_by_server(server_port=parts.port, client_port=slow.getsockname()[1])
        answered = {}
        waiting = threading.Thread(target=lambda: answered.update(reply=get_balance(slow_server, session)))
        started = time.monotonic()
        waiting.start()
        waiting.join(timeout=FREED_WITHIN_SECONDS)

        assert "reply" in answered, f"no worker was freed within {FREED_WITHIN_SECONDS} s"
        assert answered["reply"].status == 200
        assert time.monotonic() - started >= TIMEOUT_SECONDS - 1  # it waited for the timeout
        # The slow client is told (Gunicorn answers 500 from the worker it aborts) and let go.
        assert read_until_closed(slow).split(b"\r\n", 1)[0] in (b"", b"HTTP/1.1 500 Internal Server Error")
    assert "WORKER TIMEOUT" in slow_server.log()
    assert lab_snapshot(module_lab) == before


def get_balance(server, session):
    return request(server.url, "GET", "/accounts/withdraw/", session=session)


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received
