"""Bad input to the signup endpoint, through the real Gunicorn: a clear 4xx, nothing changed."""

from urllib.parse import urlencode

import pytest

from racelab.loadgen.login import SessionCookies
from races.views import CHUNKED_BODY, NOT_A_FORM, NOT_LOGGED_IN
from scenarios.signups.forms import EMAIL_ERROR, STRATEGY_ERROR
from scenarios.signups.provisioning import LAB_EMAIL
from tests.hardening.lab_http import request
from tests.helpers import lab_snapshot, log_in_lab_user
from tests.lab_database import command

pytestmark = pytest.mark.e2e

REGISTER = "/scenarios/signup/register/"
# An address Django's validator takes, one character longer than an address may be.
TOO_LONG = "x" * 64 + "@" + "y" * 63 + "." + "y" * 63 + "." + "y" * 58 + ".com"


@pytest.fixture(scope="module")
def session(module_lab, module_server, tmp_path_factory) -> SessionCookies:
    command(module_lab, "seed_scenario", "signup")
    session = log_in_lab_user(module_server, tmp_path_factory.mktemp("login"))
    # The lab address taken, so a second signup of it has something to be refused by.
    taken = request(module_server.url, "POST", REGISTER, body=f"email={LAB_EMAIL}", session=session)
    assert taken.status == 200, taken.text
    return session


@pytest.fixture
def unchanged(module_lab, session):
    before = lab_snapshot(module_lab)
    assert any(row["model"] == "signups.signup" for row in before)
    yield
    assert lab_snapshot(module_lab) == before


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        (f"{REGISTER}?strategy=fast", {"email": LAB_EMAIL}, 400, STRATEGY_ERROR),
        (
            f"{REGISTER}?strategy=naive&strategy=constraint",
            {"email": LAB_EMAIL},
            400,
            "strategy was given 2 times",
        ),
        (REGISTER, {}, 400, EMAIL_ERROR),
        (REGISTER, {"email": ""}, 400, EMAIL_ERROR),
        (REGISTER, {"email": "lab"}, 400, EMAIL_ERROR),
        (REGISTER, {"email": "lab@"}, 400, EMAIL_ERROR),
        (REGISTER, {"email": "@example.com"}, 400, EMAIL_ERROR),
        (REGISTER, {"email": "two words@example.com"}, 400, EMAIL_ERROR),
        (REGISTER, {"email": "lab@example.com\x00"}, 400, EMAIL_ERROR),
        (REGISTER, {"email": "é" * 3}, 400, EMAIL_ERROR),
        (REGISTER, {"email": TOO_LONG}, 400, EMAIL_ERROR),
        (REGISTER, [("email", LAB_EMAIL), ("email", LAB_EMAIL)], 400, "email was given 2 times"),
        (REGISTER, {"email": LAB_EMAIL}, 409, f"already registered: {LAB_EMAIL} has signed up before"),
        (
            f"{REGISTER}?strategy=serializable",
            {"email": LAB_EMAIL.upper()},
            409,
            f"already registered: {LAB_EMAIL} has signed up before",
        ),
    ],
)
def test_bad_forms_are_refused_with_a_reason(module_server, session, path, body, status, reason, unchanged):
    reply = request(module_server.url, "POST", path, body=urlencode(body), session=session)
    assert reply.status == status, reply.text
    assert reason in reply.text


def test_anonymous_signup_is_refused(module_server, unchanged):
    reply = request(module_server.url, "POST", REGISTER, body="email=anyone%40example.com")
    assert reply.status == 403  # no CSRF token: Django's own refusal comes first


def test_a_session_without_a_login_is_refused(module_server, session, unchanged):
    anonymous = SessionCookies(csrftoken=session.csrftoken, sessionid="not-a-session")
    reply = request(module_server.url, "POST", REGISTER, body="email=anyone%40example.com", session=anonymous)
    assert (reply.status, reply.text) == (403, NOT_LOGGED_IN)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_not_allowed(module_server, session, method, unchanged):
    assert request(module_server.url, method, REGISTER, session=session).status == 405


def test_a_chunked_or_non_form_body_is_refused(module_server, session, unchanged):
    chunked = request(
        module_server.url, "POST", REGISTER, body=iter([b"email=anyone%40example.com"]), session=session,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    json_body = request(
        module_server.url, "POST", REGISTER, body='{"email": "anyone@example.com"}', session=session,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert (chunked.status, chunked.text) == (411, CHUNKED_BODY)
    assert (json_body.status, json_body.text) == (415, NOT_A_FORM)
