"""Bad input to the withdraw endpoint, through the real Gunicorn: a clear answer, nothing changed."""

import contextlib
import socket
import threading
from urllib.parse import urlencode, urlsplit

import pytest

from accounts.forms import AMOUNT_ERROR, STRATEGY_ERROR
from labserver.lab import Server
from racelab.loadgen.login import SessionCookies
from races.views import CHUNKED_BODY, NOT_A_FORM, NOT_LOGGED_IN
from tests.hardening.lab_http import request, set_cookie
from tests.helpers import LAB_PASSWORD, lab_snapshot, log_in_lab_user
from tests.lab_database import command

pytestmark = pytest.mark.e2e

WITHDRAW = "/accounts/withdraw/"
CSRF_FAILED = "CSRF verification failed"
ORPHAN_USER = "orphan"
# Django refuses a body above DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) without reading it.
HUGE_BODY_BYTES = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def session(module_server, tmp_path_factory) -> SessionCookies:
    return log_in_lab_user(module_server, tmp_path_factory.mktemp("login"))


@pytest.fixture(scope="module")
def orphan_session(module_lab, module_server, tmp_path_factory) -> SessionCookies:
    """The session of a user deleted after logging in: their account stays, with no owner."""
    command(
        module_lab,
        "seed_account",
        "--username",
        ORPHAN_USER,
        "--no-input",
        env={"BANK_PASSWORD": LAB_PASSWORD},
    )
    orphan = log_in_lab_user(module_server, tmp_path_factory.mktemp("orphan"), username=ORPHAN_USER)
    command(
        module_lab, "shell", "-c",
        f"from django.contrib.auth.models import User; User.objects.get(username={ORPHAN_USER!r}).delete()",
    )  # fmt: skip
    return orphan


@pytest.fixture(scope="module")
def baseline(module_lab, session, orphan_session) -> list[dict]:
    snapshot = lab_snapshot(module_lab)
    assert any(row["model"] == "accounts.account" and row["fields"]["user"] is None for row in snapshot)
    return snapshot


@pytest.fixture
def unchanged(module_lab, baseline):
    """The test's requests must leave every user, balance and ledger row as they were."""
    yield
    assert lab_snapshot(module_lab) == baseline


@pytest.fixture(scope="module")
def anonymous_csrftoken(module_server) -> str:
    """A CSRF cookie as the login page hands one to anyone, so only the login itself is missing."""
    reply = request(module_server.url, "GET", "/auth/login/")
    assert reply.status == 200
    return set_cookie(reply.set_cookies, "csrftoken").value


def test_anonymous_get_is_refused(module_server, unchanged):
    reply = request(module_server.url, "GET", WITHDRAW)

    assert (reply.status, reply.text) == (403, NOT_LOGGED_IN)


def test_anonymous_post_with_a_valid_csrf_token_is_refused(module_server, anonymous_csrftoken, unchanged):
    reply = request(
        module_server.url, "POST", WITHDRAW, body="amount=1",
        headers={"Cookie": f"csrftoken={anonymous_csrftoken}", "X-CSRFToken": anonymous_csrftoken},
    )  # fmt: skip

    assert (reply.status, reply.text) == (403, NOT_LOGGED_IN)


def test_anonymous_post_without_csrf_token_is_refused(module_server, unchanged):
    reply = request(module_server.url, "POST", WITHDRAW, body="amount=1")

    assert reply.status == 403
    assert CSRF_FAILED in reply.text


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_not_allowed(module_server, session, method, unchanged):
    reply = request(module_server.url, method, WITHDRAW, body="amount=1", session=session)

    assert reply.status == 405


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"X-CSRFToken": "x" * 32}, id="wrong-token"),
        pytest.param({"X-CSRFToken": ""}, id="empty-token"),
    ],
)
def test_post_without_the_right_csrf_token_is_refused(module_server, session, headers, unchanged):
    reply = request(
        module_server.url, "POST", WITHDRAW, body="amount=1", session=session, csrf=False, headers=headers
    )

    assert reply.status == 403
    assert CSRF_FAILED in reply.text


def test_post_with_the_token_but_no_csrf_cookie_is_refused(module_server, session, unchanged):
    reply = request(
        module_server.url, "POST", WITHDRAW, body="amount=1",
        headers={"Cookie": f"sessionid={session.sessionid}", "X-CSRFToken": session.csrftoken},
    )  # fmt: skip

    assert reply.status == 403
    assert CSRF_FAILED in reply.text


@pytest.mark.parametrize(
    "amount", ["0", "-1", "1.5", "ten", str(10**30), "", " ", "1e3", "0x10", "１", "1000001", "+1"]
)
def test_bad_amount_is_refused(module_server, session, amount, unchanged):
    # naive: the strategy that would write whatever it was given, without a transaction.
    reply = request(module_server.url, "POST", WITHDRAW, body=urlencode({"amount": amount}), session=session)

    assert (reply.status, reply.text) == (400, AMOUNT_ERROR + "\n")


def test_repeated_amount_field_is_refused(module_server, session, unchanged):
    reply = request(module_server.url, "POST", WITHDRAW, body="amount=1&amount=2", session=session)

    assert (reply.status, reply.text) == (400, "amount was given 2 times; send it once.\n")


@pytest.mark.parametrize("query", ["strategy=fast", "strategy=NAIVE", "strategy=", "strategy=naive%00"])
def test_unknown_strategy_is_refused(module_server, session, query, unchanged):
    reply = request(module_server.url, "POST", f"{WITHDRAW}?{query}", body="amount=1", session=session)

    assert (reply.status, reply.text) == (400, STRATEGY_ERROR + "\n")


def test_repeated_strategy_is_refused(module_server, session, unchanged):
    reply = request(
        module_server.url,
        "POST",
        f"{WITHDRAW}?strategy=naive&strategy=locking",
        body="amount=1",
        session=session,
    )

    assert (reply.status, reply.text) == (400, "strategy was given 2 times; send it once.\n")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_session_of_a_deleted_owner_is_anonymous(module_server, orphan_session, method, unchanged):
    reply = request(module_server.url, method, WITHDRAW, body="amount=1", session=orphan_session)

    assert (reply.status, reply.text) == (403, NOT_LOGGED_IN)


def test_chunked_body_is_refused_not_read_as_empty(module_server, session, unchanged):
    # Read as empty, this body would withdraw the default amount of 1 instead of 5.
    reply = request(
        module_server.url, "POST", WITHDRAW, body=iter([b"amount=5"]), session=session,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip

    assert (reply.status, reply.text) == (411, CHUNKED_BODY)


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", ""])
def test_a_body_that_is_not_a_form_is_refused(module_server, session, content_type, unchanged):
    reply = request(
        module_server.url, "POST", WITHDRAW, body='{"amount": 5}', session=session,
        headers={"Content-Type": content_type},
    )  # fmt: skip

    assert (reply.status, reply.text) == (415, NOT_A_FORM)


def test_huge_body_is_refused(module_server, session, unchanged):
    status_line = post_huge_body(module_server, session, size=HUGE_BODY_BYTES)

    assert status_line.startswith("HTTP/1.1 400 ")


def post_huge_body(server: Server, session: SessionCookies, *, size: int) -> str:
    """POST ``size`` bytes of form; the server answers before reading them, so send in a thread."""
    parts = urlsplit(server.url)
    head = (
        f"POST {WITHDRAW} HTTP/1.1\r\nHost: {parts.netloc}\r\nCookie: {session.cookie_header}\r\n"
        f"X-CSRFToken: {session.csrftoken}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {size}\r\nConnection: close\r\n\r\n"
    ).encode()
    body = b"amount=1&pad=" + b"x" * (size - len(b"amount=1&pad="))
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as sock:
        sender = threading.Thread(target=_send_quietly, args=(sock, head + body), daemon=True)
        sender.start()
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass  # the server closed with the body unread; what it answered first is kept
        sender.join(timeout=15)
    return received.split(b"\r\n", 1)[0].decode()


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # refused and closed before the body's end: the point
        sock.sendall(data)
