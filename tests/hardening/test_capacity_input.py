"""Bad input to the capacity scenario's endpoint, through the real Gunicorn: a clear 4xx, nothing
changed."""

from urllib.parse import urlencode

import pytest

from racelab.loadgen.login import SessionCookies
from races.views import CHUNKED_BODY, NOT_A_FORM, NOT_LOGGED_IN
from scenarios.capacity.forms import ACTIVITY_ERROR, STRATEGY_ERROR
from scenarios.capacity.participation import Strategy
from scenarios.capacity.provisioning import LAB_ACTIVITY
from tests.hardening.lab_http import request
from tests.helpers import lab_snapshot, log_in_lab_user
from tests.lab_database import command

pytestmark = pytest.mark.e2e

JOIN = "/scenarios/capacity/join/"


@pytest.fixture(scope="module")
def session(module_lab, module_server, tmp_path_factory) -> SessionCookies:
    command(module_lab, "seed_scenario", "capacity", "--limit", "1")
    return log_in_lab_user(module_server, tmp_path_factory.mktemp("login"))


@pytest.fixture
def unchanged(module_lab, session):
    before = lab_snapshot(module_lab)
    assert any(row["model"] == "capacity.activity" for row in before)
    yield
    assert lab_snapshot(module_lab) == before


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        (f"{JOIN}?strategy=fast", {"activity": LAB_ACTIVITY}, 400, STRATEGY_ERROR),
        (
            f"{JOIN}?strategy=naive&strategy=locking",
            {"activity": LAB_ACTIVITY},
            400,
            "strategy was given 2 times",
        ),
        (JOIN, {}, 400, ACTIVITY_ERROR),
        (JOIN, {"activity": ""}, 400, ACTIVITY_ERROR),
        (JOIN, {"activity": "LAB ACTIVITY"}, 400, ACTIVITY_ERROR),
        (JOIN, {"activity": "é" * 3}, 400, ACTIVITY_ERROR),
        (JOIN, {"activity": "X" * 41}, 400, ACTIVITY_ERROR),
        (JOIN, [("activity", LAB_ACTIVITY), ("activity", LAB_ACTIVITY)], 400, "activity was given 2 times"),
        (JOIN, {"activity": "NO-SUCH-ACTIVITY"}, 404, "There is no activity 'NO-SUCH-ACTIVITY'."),
        (JOIN, {"activity": "NO-SUCH-ACTIVITY"}, 404, "`manage.py seed_scenario capacity`"),
    ],
)
def test_bad_forms_are_refused_with_a_reason(module_server, session, path, body, status, reason, unchanged):
    reply = request(module_server.url, "POST", path, body=urlencode(body), session=session)
    assert reply.status == status, reply.text
    assert reason in reply.text


@pytest.mark.parametrize("strategy", [strategy.value for strategy in Strategy])
def test_joining_a_full_activity_is_refused_with_a_reason(module_lab, module_server, session, strategy):
    join = f"{JOIN}?strategy={strategy}"
    try:
        joined = request(module_server.url, "POST", join, body=f"activity={LAB_ACTIVITY}", session=session)
        assert (joined.status, joined.text) == (200, f"Joined activity {LAB_ACTIVITY}: place 1 of 1.\n")
        before = lab_snapshot(module_lab)
        full = request(module_server.url, "POST", join, body=f"activity={LAB_ACTIVITY}", session=session)
        assert (full.status, full.text) == (
            409,
            f"Activity {LAB_ACTIVITY} is full: 1 of 1 place(s) taken; you were not added.\n",
        )
        assert lab_snapshot(module_lab) == before
    finally:
        command(module_lab, "reset_scenario", "capacity", "--no-input")


def test_anonymous_joining_is_refused(module_server, unchanged):
    reply = request(module_server.url, "POST", JOIN, body=f"activity={LAB_ACTIVITY}")
    assert reply.status == 403  # no CSRF token: Django's own refusal comes first


def test_a_session_without_a_login_is_refused(module_server, session, unchanged):
    anonymous = SessionCookies(csrftoken=session.csrftoken, sessionid="not-a-session")
    reply = request(module_server.url, "POST", JOIN, body=f"activity={LAB_ACTIVITY}", session=anonymous)
    assert (reply.status, reply.text) == (403, NOT_LOGGED_IN)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_not_allowed(module_server, session, method, unchanged):
    assert request(module_server.url, method, JOIN, session=session).status == 405


def test_a_chunked_or_non_form_body_is_refused(module_server, session, unchanged):
    chunked = request(
        module_server.url, "POST", JOIN, body=iter([f"activity={LAB_ACTIVITY}".encode()]), session=session,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    json_body = request(
        module_server.url, "POST", JOIN, body=f'{{"activity": "{LAB_ACTIVITY}"}}', session=session,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert (chunked.status, chunked.text) == (411, CHUNKED_BODY)
    assert (json_body.status, json_body.text) == (415, NOT_A_FORM)
