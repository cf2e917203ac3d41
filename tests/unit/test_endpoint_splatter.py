"""splatter at any endpoint (--path): what it refuses (exit 2, nothing sent, nothing changed), and
its verdict from --check against a real server (exit 1 with violations, 0 without). The same
command in a project created by startproject is in tests/e2e/test_new_project.py."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Account, Transaction
from racelab.loadgen.credentials import SESSION_ENV_VAR
from racelab.management.password_input import PASSWORD_ENV_VAR
from tests.json_schema import valid

pytestmark = pytest.mark.django_db

USAGE_ERROR = 2


def splatter(*args: str) -> str:
    out = StringIO()
    call_command("splatter", *args, "--no-input", stdout=out, stderr=StringIO())
    return out.getvalue()


def broken_check() -> int:
    raise RuntimeError("the check's own bug")


def writing_check() -> int:
    """A check with a side effect: the read-only transaction it runs in refuses it."""
    Account.objects.update(current=0)
    return 0


def ledger_rows() -> int:
    """A check as a project writes one: here, every withdrawal recorded counts as a violation."""
    return Transaction.objects.count()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--path", "shop/checkout/"),
            r"--path 'shop/checkout/' must be a path on the server, starting with one /",
        ),
        (("--path", "/a b/"), "in URL-encoded ASCII without spaces"),
        (
            ("--path", "/a/", "--method", "GET"),
            "--method must be one of POST, PUT, PATCH, DELETE, not 'GET'.",
        ),
        (("--path", "/a/", "--data", "a=1", "--json", "{}"), "--data sends a form and --json a JSON body"),
        (("--path", "/a/", "--json", "{'a': 1}"), "--json is not valid JSON"),
        (("--path", "/a/", "--data", "a"), "--data 'a' is not a URL-encoded form like 'a=1&b=2'"),
        (
            ("--path", "/a/", "--header", "X-Evil: a\r\nHost: b"),
            "is not a header: write 'Name: value', on one line",
        ),
        (("--path", "/a/", "--header", "no colon"), "is not a header"),
        (("--path", "/a/", "--header", "Cookie: sessionid=x"), "--header Cookie: splatter sets it itself"),
        (
            ("--path", "/a/", "--driver", "ab", "-c", "2", "--data", "a=1", "--data", "a=2", "--data", "a=3"),
            "ab sends one body per process, and 3 --data forms need -c of at least 3",
        ),
        (("--path", "/a/", "-c", "2,3"), "With --path, give one -c level and one driver."),
        (("--path", "/a/", "-n", "2", "-c", "3"), r"-c must be from 1 to -n \(2\)"),
        (
            ("--path", "/a/", "--race-window-at", "shop_cart"),
            "--race-window-at says where --race-window holds",
        ),
        (
            ("--path", "/a/", "--check", "SELECT nothing FROM nowhere"),
            "--check: the database refused the query",
        ),
        (("--path", "/a/", "--check", "SELECT 1 UNION SELECT 2"), "must answer one row of one number"),
        (
            ("--path", "/a/", "--check", "SELECT 'many'"),
            "gave 'many': it must give a whole number of violations",
        ),
        (("--path", "/a/", "--check", "SELECT -1"), "gave -1: it must give a whole number of violations"),
        (
            ("--path", "/a/", "--check", "no_such_module:count"),
            "--check 'no_such_module:count': cannot import it",
        ),
        (
            ("--path", "/a/", "--scenario", "voucher", "--strategy", "naive"),
            "--scenario, --strategy run the lab's",
        ),
        (("--path", "/a/", "--no-record"), "--no-record run the lab's own races; with --path, drop them."),
        (("--path", "//127.0.0.2/a/"), "must be a path on the server, starting with one /"),
        (
            ("--path", "/a/", "--login-url", "@127.0.0.2:9/login/"),
            "--login-url '@127.0.0.2:9/login/' must be a path",
        ),
        (("--path", "/a/", "--header", "X-Price: €1"), "on one line, in printable ASCII"),
        (
            ("--path", "/a/", "--header", "Transfer-Encoding: chunked"),
            "--header Transfer-Encoding: splatter sets",
        ),
        (("--path", "/a/", "--history", "/tmp"), "--history /tmp is a folder: give the name of a file"),
        (("--path", "/a/", "--check", "SELECT 0; DELETE FROM accounts_account"), "must be one SELECT"),
        (("--path", "/a/", "--check", "DELETE FROM accounts_account"), "must be one SELECT"),
        (("--path", "/a/", "--check", ".x:y"), "must be one SELECT"),
        (("--path", "/a/", "--check", "json:dumps"), "--check 'json:dumps' raised TypeError"),
        (
            ("--path", "/a/", "--check", f"{__name__}:broken_check"),
            "raised RuntimeError: the check's own bug",
        ),
    ],
)
def test_bad_endpoint_options_are_refused_with_exit_2_before_anything_is_sent(
    splatter_password, account, lab_port, args, message, database_unchanged
):
    with database_unchanged(), pytest.raises(CommandError, match=message) as refused:
        splatter("--url", lab_port.url, "--username", "alice", "--driver", "burst", *args)
    assert refused.value.returncode == USAGE_ERROR
    assert lab_port.arrivals() == []


def test_login_options_without_a_username_are_refused(lab_port, database_unchanged):
    with (
        database_unchanged(),
        pytest.raises(CommandError, match="--login-url describes the login form: add --username."),
    ):
        splatter("--url", lab_port.url, "--path", "/a/", "--login-url", "/login/", "--driver", "burst")
    assert lab_port.arrivals() == []


@pytest.mark.parametrize(
    ("cookie", "driver", "message"),
    [
        ("abc\r\nX-Injected: 1", "burst", r"\$RACELAB_SESSION_COOKIE must be a session cookie's value alone"),
        ("abc;def", "burst", "without spaces, quotes, commas, semicolons or backslashes"),
        ("abc", "ab", r"ab takes a cookie on its command line, where ps would show \$RACELAB_SESSION_COOKIE"),
    ],
)
def test_a_session_cookie_that_would_break_the_request_or_show_in_ps_is_refused(
    lab_port, monkeypatch, cookie, driver, message, database_unchanged
):
    monkeypatch.setenv(SESSION_ENV_VAR, cookie)
    with database_unchanged(), pytest.raises(CommandError, match=message) as refused:
        splatter("--url", lab_port.url, "--path", "/a/", "--driver", driver)
    assert refused.value.returncode == USAGE_ERROR
    assert lab_port.arrivals() == []


def test_endpoint_options_without_a_path_are_refused(
    splatter_password, account, lab_port, database_unchanged
):
    with (
        database_unchanged(),
        pytest.raises(CommandError, match="--data describes the requests to an endpoint"),
    ):
        splatter("--url", lab_port.url, "--data", "amount=1")
    assert lab_port.arrivals() == []


def test_a_wrong_password_is_exit_2_and_nothing_is_fired(
    account, lab_server_url, monkeypatch, database_unchanged
):
    monkeypatch.setenv(PASSWORD_ENV_VAR, "not the password")
    with database_unchanged(), pytest.raises(CommandError, match="refused the username 'alice'") as refused:
        splatter(
            "--url",
            lab_server_url,
            "--path",
            "/accounts/withdraw/",
            "--username",
            "alice",
            "--driver",
            "burst",
        )
    assert refused.value.returncode == USAGE_ERROR


@pytest.fixture
def lab_server_url(live_server) -> str:
    return live_server.url


@pytest.mark.django_db(transaction=True)
def test_a_check_function_with_violations_exits_1_and_reports_them(
    splatter_password, account, lab_server_url
):
    with pytest.raises(SystemExit) as exited:
        splatter(
            "--url", lab_server_url, "--path", "/accounts/withdraw/?strategy=atomic_update",
            "--data", "amount=1", "--data", "amount=2", "--username", "alice", "--driver", "burst",
            "-n", "4", "-c", "2", "--check", "tests.unit.test_endpoint_splatter:ledger_rows",
        )  # fmt: skip
    assert exited.value.code == 1
    # Request i sent form i mod 2: two of each.
    assert sorted(Transaction.objects.values_list("amount", flat=True)) == [1, 1, 2, 2]
    account.refresh_from_db()
    assert account.current == account.opening - 6


def endpoint_document(*args: str) -> dict:
    """splatter --path's JSON document, once it passes the schema (docs/json-schema.json)."""
    return valid(
        json.loads(splatter(*args, "--driver", "burst", "--format", "json")), kind="splatter-endpoint"
    )


@pytest.mark.django_db(transaction=True)
def test_a_check_cannot_write(splatter_password, account, lab_port):
    with pytest.raises(CommandError, match=f"--check '{__name__}:writing_check' raised") as refused:
        splatter(
            "--url",
            lab_port.url,
            "--path",
            "/a/",
            "--driver",
            "burst",
            "--check",
            f"{__name__}:writing_check",
        )
    assert refused.value.returncode == USAGE_ERROR
    account.refresh_from_db()
    assert account.current == account.opening
    assert lab_port.arrivals() == []


@pytest.mark.django_db(transaction=True)
def test_a_check_query_of_none_exits_0_and_the_json_says_so(splatter_password, account, lab_server_url):
    check = "SELECT count(*) FROM accounts_account WHERE current < minimum"
    document = endpoint_document(
        "--url", lab_server_url, "--path", "/accounts/withdraw/", "--data", "amount=5", "--username", "alice",
        "-n", "3", "-c", "3", "--check", check,
    )  # fmt: skip

    assert (document["method"], document["path"], document["driver"]) == (
        "POST",
        "/accounts/withdraw/",
        "burst",
    )
    assert (document["requests"], document["concurrency"], document["ok"], document["refused"]) == (
        3,
        3,
        3,
        0,
    )
    assert document["check"] == {"check": check, "violations": 0}
    assert document["race_window"] is None
    assert Transaction.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_without_a_username_requests_go_anonymous(account, lab_server_url):
    """Without --username nor $RACELAB_SESSION_COOKIE nothing logs in, and the bank's view refuses
    them (tests/e2e/test_new_project.py shows anonymous requests passing Django's CSRF check)."""
    with pytest.raises(CommandError, match=r"None of the 2 requests to .* succeeded \(2 x 403\)") as refused:
        splatter(
            "--url", lab_server_url, "--path", "/accounts/withdraw/", "--data", "amount=5",
            "-n", "2", "-c", "2", "--driver", "burst",
        )  # fmt: skip

    # No verdict on a run where nothing succeeded: a usage error, not "no violation".
    assert refused.value.returncode == USAGE_ERROR
    assert Transaction.objects.count() == 0
