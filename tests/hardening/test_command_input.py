"""Bad input to the project's commands: a CommandError a user can act on, and nothing changed.

Argument errors run in-process with call_command. What needs a real server or a real missing
binary runs ``manage.py`` against the lab's Gunicorn (see test_command_environment.py).
"""

import http.server
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import DataError, IntegrityError, connection, transaction

from accounts.models import Account
from accounts.provisioning import seed_account
from labserver.lab import LOOPBACK, free_port
from racelab.management.database_errors import reports_database_errors
from tests.helpers import database_snapshot

pytestmark = pytest.mark.usefixtures("fast_password_hasher")

PASSWORD = "correct horse battery staple"


@pytest.fixture
def seeded(db, monkeypatch):
    monkeypatch.setenv("BANK_PASSWORD", PASSWORD)
    seed_account(username="alice", password=PASSWORD, opening=1_000, minimum=0)


@pytest.fixture
def unchanged(seeded):
    before = database_snapshot()
    yield
    assert database_snapshot() == before


def refused(command: str, *args: str, match: str) -> str:
    """The CommandError's message, which ``match`` must find (re.search), and no traceback."""
    with pytest.raises(CommandError, match=match) as error:
        call_command(command, *args, stdout=StringIO(), stderr=StringIO())
    message = str(error.value)
    assert "Traceback" not in message
    return message


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["splatter", "--no-input", "--url", "http://127.0.0.1:1"], "There is no user named 'nobody'"),
        (["reset_balances", "--no-input"], "There is no user named 'nobody'"),
        (["audit_transactions"], "User 'nobody' has no account"),
    ],
    ids=["splatter", "reset_balances", "audit_transactions"],
)
def test_unknown_user(args, message, unchanged):
    refused(*args, "--username", "nobody", match=re.escape(message))


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("seed_account", ["--balance", "-1"], "The opening balance must be from 0 to"),
        ("seed_account", ["--balance", "1.5"], "argument --balance: invalid int value: '1.5'"),
        ("seed_account", ["--balance", "ten"], "argument --balance: invalid int value: 'ten'"),
        ("seed_account", ["--balance", "3000000000"], "The opening balance must be from 0 to 2000000000"),
        ("seed_account", ["--minimum", "-1"], "The minimum must be from 0 to the opening balance"),
        (
            "seed_account",
            ["--balance", "10", "--minimum", "11"],
            "The minimum must be from 0 to the opening balance (10), not 11",
        ),
        ("reset_balances", ["--balance", "-5"], "The opening balance must be from 0 to"),
        ("reset_balances", ["--balance", "x"], "argument --balance: invalid int value: 'x'"),
    ],
)
def test_bad_balances(command, args, message, unchanged):
    refused(command, "--no-input", "--username", "alice", *args, match=re.escape(message))


# What Django's UnicodeUsernameValidator and the 150-character column refuse. Before they were
# checked, SQLite stored the long ones silently and PostgreSQL and MariaDB raised a DataError.
BAD_USERNAMES = {
    "151-characters": "u" * 151,
    "5000-characters": "u" * 5000,
    "space": "alice smith",
    "newline": "alice\nroot",
    "trailing-newline": "alice\n",
    "slash": "alice/bob",
}


@pytest.mark.parametrize("username", BAD_USERNAMES.values(), ids=BAD_USERNAMES)
def test_seed_account_refuses_a_username_the_user_model_cannot_hold(username, unchanged):
    message = refused("seed_account", "--no-input", "--username", username, match="^The username ")

    assert (
        "A username is at most 150 letters, digits and @ . + - _ (no spaces, slashes or line breaks)"
        in message
    )
    assert message.endswith("Nothing was changed.")
    assert len(message) < 600  # the start of a long name, not all 5000 characters of it


def test_seed_account_refuses_a_bad_username_before_asking_for_a_password(unchanged, monkeypatch):
    monkeypatch.delenv("BANK_PASSWORD")  # the password would be the next thing read

    refused(
        "seed_account",
        "--no-input",
        "--username",
        "alice smith",
        match="^The username 'alice smith' cannot be used",
    )


@pytest.fixture
def dirty(seeded):
    """alice's account away from its opening balance, so a reset would show in a snapshot."""
    Account.objects.update(current=5, version=3)


@pytest.mark.parametrize("typed", ["", "no\n", "y\n", "YES\n", "yes please\n"], ids=repr)
def test_reset_balances_cancels_unless_yes_is_typed(dirty, typed, monkeypatch):
    # "" is standard input at its end (EOF), as under cron or `< /dev/null`.
    monkeypatch.setattr("sys.stdin", StringIO(typed))
    before = database_snapshot()

    refused("reset_balances", "--username", "alice", match=r"^Reset cancelled; nothing was changed\.$")

    assert database_snapshot() == before


def test_reset_balances_goes_on_when_yes_is_typed(dirty, monkeypatch):
    # The control for the test above: the same call, answered "yes", does reset.
    monkeypatch.setattr("sys.stdin", StringIO("yes\n"))

    call_command("reset_balances", "--username", "alice", stdout=StringIO())

    assert Account.objects.get(user__username="alice").current == 1_000


def test_a_value_the_database_refuses_is_one_clear_sentence(seeded):
    # A duplicate username gets past a command's checks when two commands race to create it;
    # the database's refusal (an IntegrityError, not an OperationalError) must still be a sentence.
    @reports_database_errors
    def handle():
        with transaction.atomic():
            User.objects.create(username="alice")

    before = database_snapshot()

    with pytest.raises(CommandError, match=" refused what the command wrote: ") as error:
        handle()

    assert isinstance(error.value.__cause__, IntegrityError)
    assert str(error.value).endswith("or run the command again if another one was writing at the same time.")
    assert database_snapshot() == before


def test_a_value_too_long_for_its_column_is_one_clear_sentence(seeded):
    # Past the checks (a direct write): PostgreSQL and MariaDB refuse it with a DataError.
    @reports_database_errors
    def handle():
        with transaction.atomic():
            User.objects.create(username="u" * 151)

    if connection.vendor == "sqlite":
        # SQLite does not enforce a VARCHAR's length: the row is stored whole, nothing to refuse.
        handle()
        assert User.objects.filter(username="u" * 151).exists()
        pytest.skip("SQLite stores a value longer than its column: nothing to refuse")
    before = database_snapshot()

    with pytest.raises(CommandError, match=" refused what the command wrote: ") as error:
        handle()

    assert isinstance(error.value.__cause__, DataError)
    assert database_snapshot() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "5", "-c", "6"], "-c must be from 1 to -n (5)"),
        (["-n", "0"], "-n must be from 1 to"),
        (["-n", "-3"], "-n must be from 1 to"),
        (["-c", "0"], "-c must be from 1 to -n"),
        (["-c", "-1"], "-c must be from 1 to -n"),
        (["--amount", "0"], "--amount must be from 1 to"),
        (["--amount", "-7"], "--amount must be from 1 to"),
        (["-n", "many"], "argument -n/--requests: invalid int value: 'many'"),
        (
            ["--strategy", "fast"],
            "'fast' is not a strategy of the withdrawal: use one of naive, atomic_update",
        ),
    ],
)
def test_splatter_bad_counts(args, message, unchanged):
    refused(
        "splatter", "--no-input", "--username", "alice", "--url", f"http://{LOOPBACK}:1", *args,
        match=re.escape(message),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "0"], "The number of rows must be from 1"),
        (["--rows", "-5"], "The number of rows must be from 1"),
        (["--accounts", "0"], "The number of accounts must be from 1"),
        (["--rows", "3", "--accounts", "4"], "to the number of rows (3)"),
        (["--amount", "0"], "The amount must be from 1"),
        (["--prefix", "a b"], "The prefix must be letters"),
        (["--rows", "1e6"], "argument --rows: invalid int value: '1e6'"),
    ],
)
def test_fill_ledger_bad_counts(args, message, unchanged):
    refused("fill_ledger", *args, match=re.escape(message))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("127.0.0.1:8001", "is not a valid base URL"),
        ("http://", "is not a valid base URL"),
        ("ftp://127.0.0.1:8001", "is not a valid base URL"),
        ("http://127.0.0.1:99999", "is not a valid URL"),
        ("http://127.0.0.1:port", "is not a valid URL"),
        ("http://127.0.0.1:8001/accounts/withdraw/", "has a path or query"),
        ("http://127.0.0.1:8001/?strategy=naive", "has a path or query"),
        ("http://[::1", "is not a valid URL"),
    ],
)
def test_splatter_malformed_url(url, message, unchanged):
    refused("splatter", "--no-input", "--username", "alice", "--url", url, match=re.escape(message))


def test_splatter_to_a_server_that_is_down(unchanged):
    url = f"http://{LOOPBACK}:{free_port()}"

    down = f"Cannot reach the server at {url}/auth/login/: is it running, and listening on"
    refused("splatter", "--no-input", "--username", "alice", "--url", url, match=f"^{re.escape(down)}")


def test_splatter_to_another_http_server(unchanged):
    not_the_lab = (
        "answered HTTP 200 without a CSRF cookie (csrftoken): it does not look like a Django login page"
    )
    with other_http_server() as url:
        refused("splatter", "--no-input", "--username", "alice", "--url", url, match=re.escape(not_the_lab))


def test_splatter_to_a_port_that_does_not_speak_http(unchanged):
    with banner_server(b"SSH-2.0-OpenSSH_9.2\r\n") as url:
        failed = f"curl failed on {url}/auth/login/ (exit "
        refused("splatter", "--no-input", "--username", "alice", "--url", url, match=f"^{re.escape(failed)}")


def test_splatter_without_curl_installed(unchanged, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a real PATH, with neither curl nor ab on it

    missing = "curl is not installed: install the Debian package curl (apt-get install curl)."
    refused(
        "splatter", "--no-input", "--driver", "ab", "--username", "alice",
        "--url", f"http://{LOOPBACK}:{free_port()}", match=f"^{re.escape(missing)}$",
    )  # fmt: skip


@contextmanager
def other_http_server() -> Iterator[str]:
    """A loopback web server that is not the lab: 200 and a page, no CSRF cookie."""

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            body = b"<h1>Some other app</h1>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def banner_server(banner: bytes) -> Iterator[str]:
    """A loopback port that greets every connection with ``banner`` and hangs up."""
    listener = socket.create_server((LOOPBACK, 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.sendall(banner)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()
