"""A withdrawal whose body ends before its Content-Length, through the real Gunicorn.

However the client goes away (a close, a close after a pause, a process killed mid-body, an
abort), the server must answer 400 and withdraw nothing: Gunicorn hands Django the bytes that
came, and "amount=70&" cut after 8 bytes would read as a valid "amount=7".

The server writes an access log, so a test whose client cannot read the answer (it was killed,
or it aborted) still waits for the server to have finished with the request, and sees its status.
"""

import http.client
import re
import socket
import struct
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

from accounts.middleware import BODY_CUT_SHORT
from labserver.lab import Server
from racelab.loadgen.login import SessionCookies
from tests.helpers import lab_snapshot, log_in_lab_user
from tests.tcp_state import wait_until_read_by_server

pytestmark = pytest.mark.e2e

WITHDRAW = "/accounts/withdraw/"
TIMEOUT_SECONDS = 15
# A client that stopped before the end of "amount=70&" (10 bytes): what came reads as amount=7.
KILLED_BODY = b"amount=70&"
KILLED_AFTER = 8

# Run as its own process and SIGKILLed, as a crashed or killed client is: it sends the head and
# part of the body, says so, and waits to be killed. Its kernel then closes the connection.
KILLED_CLIENT = """
import socket, sys, time
host, port, data = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
client = socket.create_connection((host, port))
client.sendall(data)
print("sent from", client.getsockname()[1], flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def logged_server(module_lab) -> Server:
    with module_lab.serve(workers=2, env={"GUNICORN_ACCESS_LOG": "-"}) as server:
        yield server


@pytest.fixture(scope="module")
def session(logged_server, tmp_path_factory) -> SessionCookies:
    return log_in_lab_user(logged_server, tmp_path_factory.mktemp("login"))


def head(server: Server, session: SessionCookies, *, content_length: int) -> bytes:
    return (
        f"POST {WITHDRAW} HTTP/1.1\r\nHost: {urlsplit(server.url).netloc}\r\n"
        f"Cookie: {session.cookie_header}\r\nX-CSRFToken: {session.csrftoken}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {content_length}\r\nConnection: close\r\n\r\n"
    ).encode()


def connect(server: Server) -> socket.socket:
    parts = urlsplit(server.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT_SECONDS)


def read_reply(sock: socket.socket) -> tuple[int, str]:
    """The status and text of the answer on ``sock`` (Gunicorn may send it chunked)."""
    reply = http.client.HTTPResponse(sock)
    reply.begin()
    return reply.status, reply.read().decode()


def withdrawal_statuses(server: Server) -> list[str]:
    """The status of every withdrawal the server finished, from its access log, oldest first."""
    return re.findall(rf'"POST {WITHDRAW} HTTP/1\.1" (\d{{3}}) ', server.log())


def next_withdrawal_status(server: Server, *, seen: int) -> str:
    """Wait for the server to finish one more withdrawal than ``seen``; its status."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        statuses = withdrawal_statuses(server)
        if len(statuses) > seen:
            return statuses[seen]
        time.sleep(0.1)
    raise AssertionError(f"the server did not finish the withdrawal within {TIMEOUT_SECONDS} s")


@pytest.mark.parametrize(
    ("body", "content_length", "pause"),
    [
        pytest.param(b"amount=5", 9, 0, id="one-byte-short-then-close"),
        pytest.param(b"amount=2", 100, 2, id="far-short-then-close-after-2s"),
    ],
)
def test_a_body_cut_short_by_a_close_is_refused(
    logged_server, session, body, content_length, pause, unchanged
):
    with connect(logged_server) as client:
        client.sendall(head(logged_server, session, content_length=content_length) + body)
        time.sleep(pause)
        client.shutdown(socket.SHUT_WR)  # FIN: the client is done sending, and still reads
        reply = read_reply(client)

    assert reply == (400, BODY_CUT_SHORT)


def test_a_body_cut_short_by_a_killed_client_is_refused(logged_server, session, unchanged):
    seen = len(withdrawal_statuses(logged_server))
    parts = urlsplit(logged_server.url)
    data = head(logged_server, session, content_length=len(KILLED_BODY)) + KILLED_BODY[:KILLED_AFTER]
    client = subprocess.Popen(
        [sys.executable, "-c", KILLED_CLIENT, parts.hostname, str(parts.port), data.hex()],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        said = client.stdout.readline().split()
        assert said[:2] == ["sent", "from"], said
        # A worker must be waiting for the rest of the body before the client dies: an RST that
        # came first would make the kernel drop the unread request, with nothing left to refuse.
        wait_until_read_by_server(server_port=parts.port, client_port=int(said[2]))
    finally:
        client.kill()  # SIGKILL: no chance to close anything itself
        client.wait(timeout=TIMEOUT_SECONDS)
        client.stdout.close()

    assert client.returncode == -9
    assert next_withdrawal_status(logged_server, seen=seen) == "400"


def test_a_body_cut_short_by_an_abort_is_refused(logged_server, session, unchanged):
    seen = len(withdrawal_statuses(logged_server))
    client = connect(logged_server)
    client.sendall(head(logged_server, session, content_length=len(KILLED_BODY)) + KILLED_BODY[:KILLED_AFTER])
    wait_until_read_by_server(
        server_port=urlsplit(logged_server.url).port, client_port=client.getsockname()[1]
    )
    # Linger on, with a zero timeout: close() sends an RST instead of a FIN.
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()

    assert next_withdrawal_status(logged_server, seen=seen) == "400"


def test_the_whole_body_still_withdraws(module_lab, logged_server, session):
    # The control: the same raw request, whole, is served, so the refusals above are not a
    # request these tests get wrong.
    before = balance(module_lab)
    with connect(logged_server) as client:
        client.sendall(head(logged_server, session, content_length=len(KILLED_BODY)) + KILLED_BODY)
        reply = read_reply(client)

    assert reply == (200, str(before - 70))
    assert balance(module_lab) == before - 70


def balance(lab_env) -> int:
    (account,) = [row for row in lab_snapshot(lab_env) if row["model"] == "accounts.account"]
    return account["fields"]["current"]
