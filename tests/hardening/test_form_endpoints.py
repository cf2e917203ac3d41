"""What every form endpoint refuses in one place, through the real Gunicorn: a form in another
charset than UTF-8 (races/charset.py, login included), bytes that are not UTF-8, a strategy
anywhere but the query string (races/forms.py). A clear 400, nothing changed."""

import base64
from urllib.parse import quote, urlencode

import pytest

from labreport.middleware import RUN_HEADER
from racelab.loadgen.login import SessionCookies
from races.charset import NOT_UTF8
from races.forms import NOT_UTF8_TEXT, QUERY_TAKES_STRATEGY_ONLY, STRATEGY_IN_FORM
from scenarios.catalogue import SCENARIOS
from scenarios.profiles.provisioning import LAB_PROFILE
from tests.hardening.lab_http import request, set_cookie
from tests.helpers import LAB_PASSWORD, LAB_USER, lab_snapshot, log_in_lab_user
from tests.lab_database import command, dumped

pytestmark = pytest.mark.e2e

FORM = "application/x-www-form-urlencoded"
# Each endpoint with a form it takes: the withdrawal and the form splatter sends each scenario.
ENDPOINTS = {
    "withdrawal": ("POST", "/accounts/withdraw/", {"amount": "1"}),
    **{
        name: (scenario.method, scenario.path, scenario.forms_for(concurrency=2)[0])
        for name, scenario in SCENARIOS.items()
    },
}
POST_ENDPOINTS = [name for name, (method, _, _) in ENDPOINTS.items() if method == "POST"]
# rot13 and base64 encode no text: Django failed on them as it built the request, before any
# middleware, whenever there was a query string to decode.
OTHER_CHARSETS = ["iso-8859-1", "utf-16", "utf8", "rot13", "base64"]
# The header X-Lab-Run arrives under, without WSGI's HTTP_ prefix.
RUN_TOKEN_HEADER = RUN_HEADER.removeprefix("HTTP_").replace("_", "-")


@pytest.fixture(scope="module")
def session(module_lab, module_server, tmp_path_factory) -> SessionCookies:
    for scenario in SCENARIOS.values():
        command(module_lab, *scenario.seed_command(size=5))
    return log_in_lab_user(module_server, tmp_path_factory.mktemp("login"))


def send(server, session, endpoint: str, *, body: bytes | str, content_type: str = FORM, query: str = ""):
    method, path, _ = ENDPOINTS[endpoint]
    return request(
        server.url, method, f"{path}?{query or 'strategy=naive'}", body=body, session=session,
        headers={"Content-Type": content_type},
    )  # fmt: skip


def with_last_field(endpoint: str, raw_value: bytes) -> bytes:
    """The endpoint's form, its last field (the text a profile edit sets) sent as ``raw_value``,
    bytes as they go on the wire."""
    *fields, (name, _) = ENDPOINTS[endpoint][2].items()
    return urlencode(fields).encode() + b"&" * bool(fields) + f"{name}=".encode() + raw_value


def multipart(endpoint: str, *, last_value: bytes, transfer_encoding: str | None = None) -> bytes:
    """The endpoint's form as multipart/form-data (boundary ``b``), its last field ``last_value``."""
    *fields, (name, _) = ENDPOINTS[endpoint][2].items()
    parts = [(field, value.encode(), None) for field, value in fields]
    parts.append((name, last_value, transfer_encoding))
    body = b""
    for field, value, encoding in parts:
        body += f'--b\r\nContent-Disposition: form-data; name="{field}"\r\n'.encode()
        if encoding is not None:
            body += f"Content-Transfer-Encoding: {encoding}\r\n".encode()
        body += b"\r\n" + value + b"\r\n"
    return body + b"--b--\r\n"


@pytest.mark.parametrize("charset", OTHER_CHARSETS)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_form_in_another_charset_is_refused(module_server, session, endpoint, charset, unchanged):
    body = urlencode(ENDPOINTS[endpoint][2])

    reply = send(module_server, session, endpoint, body=body, content_type=f"{FORM}; charset={charset}")

    assert (reply.status, reply.text) == (400, NOT_UTF8)


@pytest.mark.parametrize("charset", OTHER_CHARSETS)
def test_a_login_in_another_charset_is_refused_and_logs_no_one_in(module_lab, module_server, charset):
    page = request(module_server.url, "GET", "/auth/login/")
    csrftoken = set_cookie(page.set_cookies, "csrftoken").value
    before = dumped(module_lab, "auth.user", "sessions")

    reply = request(
        module_server.url, "POST", "/auth/login/?next=/lab/",
        body=urlencode({"csrfmiddlewaretoken": csrftoken, "username": LAB_USER, "password": LAB_PASSWORD}),
        headers={"Cookie": f"csrftoken={csrftoken}", "Content-Type": f"{FORM}; charset={charset}"},
    )  # fmt: skip

    assert (reply.status, reply.text) == (400, NOT_UTF8)
    assert not any(header.startswith("sessionid=") for header in reply.set_cookies)
    assert dumped(module_lab, "auth.user", "sessions") == before


@pytest.mark.parametrize("path", ["/auth/login/?next=/lab/", "/accounts/withdraw/?x=1", "/lab/?page=1"])
def test_any_request_that_names_another_charset_is_refused(module_server, session, path, unchanged):
    # Django decodes the query string in that charset too, and failed on rot13 before any view.
    reply = request(
        module_server.url, "GET", path, session=session, headers={"Content-Type": "text/plain; charset=rot13"}
    )

    assert (reply.status, reply.text) == (400, NOT_UTF8)


def test_a_form_that_says_utf8_is_read(module_lab, module_server, session):
    before = _balance(module_lab)

    reply = send(module_server, session, "withdrawal", body="amount=2", content_type=f"{FORM}; charset=UTF-8")

    assert (reply.status, reply.text) == (200, str(before - 2))
    assert _balance(module_lab) == before - 2


# Django reads %-escaped bytes that are not UTF-8 as U+FFFD, and a raw body that is not UTF-8 as
# Latin-1: 'ÿþ' for b"\xff\xfe". Either was stored as the client's text.
NOT_UTF8_VALUES = {
    "percent-escaped": b"%FF%FE",
    "raw-bytes": b"\xff\xfe",
    "latin-1-letter": b"Montr%E9al",
    "raw-latin-1-letter": b"Montr\xe9al",
    "cut-utf-8-sequence": b"Montr%C3",
}


@pytest.mark.parametrize("value", NOT_UTF8_VALUES.values(), ids=NOT_UTF8_VALUES)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_bytes_that_are_not_utf8_are_refused(module_server, session, endpoint, value, unchanged):
    reply = send(module_server, session, endpoint, body=with_last_field(endpoint, value))

    assert (reply.status, reply.text) == (400, NOT_UTF8_TEXT + "\n")


@pytest.mark.parametrize(
    "edit",
    [b"display_name=%FF%FE", b"display_name=\xff\xfe", b"city=Montr%E9al"],
    ids=["display-name-percent-escaped", "display-name-raw", "city-latin-1"],
)
def test_the_profile_edits_that_were_stored_are_refused(module_server, session, edit, unchanged):
    body = f"profile={LAB_PROFILE}&".encode() + edit

    reply = send(module_server, session, "profile", body=body, query="strategy=update_fields")

    assert (reply.status, reply.text) == (400, NOT_UTF8_TEXT + "\n")


@pytest.mark.parametrize(
    ("value", "transfer_encoding"),
    [(b"\xff\xfe", None), (base64.b64encode(b"\xff\xfe"), "base64")],
    ids=["raw-bytes", "base64-encoded-bytes"],
)
@pytest.mark.parametrize("endpoint", POST_ENDPOINTS)
def test_bytes_that_are_not_utf8_in_a_multipart_form_are_refused(
    module_server, session, endpoint, value, transfer_encoding, unchanged
):
    body = multipart(endpoint, last_value=value, transfer_encoding=transfer_encoding)

    reply = send(module_server, session, endpoint, body=body, content_type="multipart/form-data; boundary=b")

    assert (reply.status, reply.text) == (400, NOT_UTF8_TEXT + "\n")


@pytest.mark.parametrize(
    ("query", "stray"),
    [
        ("strategy%5B%5D=naive", "strategy[]"),
        ("strategy%5B%5D=naive&strategy=naive", "strategy[]"),
        ("Strategy=naive", "Strategy"),
        ("amount=5", "amount"),
        (quote("stratégie") + "=naive", "stratégie"),
    ],
)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_anything_but_strategy_in_the_query_string_is_refused(
    module_server, session, endpoint, query, stray, unchanged
):
    body = urlencode(ENDPOINTS[endpoint][2])

    reply = send(module_server, session, endpoint, body=body, query=query)

    assert (reply.status, reply.text) == (400, QUERY_TAKES_STRATEGY_ONLY.format(name=stray) + "\n")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_strategy_in_the_form_is_refused_not_left_to_the_default(
    module_server, session, endpoint, unchanged
):
    # The query names none: the naive default would have run in place of the strategy asked for.
    body = urlencode({**ENDPOINTS[endpoint][2], "strategy": "naive"})

    reply = send(module_server, session, endpoint, body=body, query="strategy=naive")

    assert (reply.status, reply.text) == (400, STRATEGY_IN_FORM + "\n")


def test_a_refused_request_of_a_lab_run_is_recorded_as_refused_and_changes_nothing_else(
    module_lab, module_server, session
):
    """docs/safety.md: the run's timeline shows every answer its client got, a 400 too."""
    before = lab_snapshot(module_lab)
    token = "hardening-refused-request"

    reply = request(
        module_server.url, "POST", "/accounts/withdraw/?strategy=fast", body="amount=1", session=session,
        headers={RUN_TOKEN_HEADER: token},
    )  # fmt: skip

    assert reply.status == 400
    after = lab_snapshot(module_lab)
    recorded = [row for row in after if row not in before]
    assert [row for row in after if row["model"] != "labreport.recordedrequest"] == [
        row for row in before if row["model"] != "labreport.recordedrequest"
    ]
    assert [(row["model"], _recorded_fields(row["fields"])) for row in recorded] == [
        (
            "labreport.recordedrequest",
            {"run_token": token, "method": "POST", "path": "/accounts/withdraw/", "status": 400,
             "read_at": None, "written_at": None, "run": None},
        )
    ]  # fmt: skip


def _recorded_fields(fields: dict) -> dict:
    return {
        key: fields[key] for key in ("run_token", "method", "path", "status", "read_at", "written_at", "run")
    }


def _balance(lab) -> int:
    (account,) = [
        row for row in lab_snapshot(lab) if row["model"] == "accounts.account" and row["fields"]["user"]
    ]
    return account["fields"]["current"]
