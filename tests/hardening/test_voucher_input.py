"""Bad input to the scenario endpoints, through the real Gunicorn: a clear 4xx, nothing changed."""

from urllib.parse import urlencode

import pytest

from racelab.loadgen.login import SessionCookies
from races.views import CHUNKED_BODY, NOT_A_FORM, NOT_LOGGED_IN
from scenarios.vouchers.forms import CODE_ERROR, STRATEGY_ERROR
from scenarios.vouchers.provisioning import LAB_VOUCHER
from tests.hardening.lab_http import request
from tests.helpers import lab_snapshot, log_in_lab_user
from tests.lab_database import command

pytestmark = pytest.mark.e2e

REDEEM = "/scenarios/voucher/redeem/"


@pytest.fixture(scope="module")
def session(module_lab, module_server, tmp_path_factory) -> SessionCookies:
    command(module_lab, "seed_scenario", "voucher", "--limit", "1")
    return log_in_lab_user(module_server, tmp_path_factory.mktemp("login"))


@pytest.fixture
def unchanged(module_lab, session):
    before = lab_snapshot(module_lab)
    assert any(row["model"] == "vouchers.voucher" for row in before)
    yield
    assert lab_snapshot(module_lab) == before


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        (f"{REDEEM}?strategy=fast", {"code": LAB_VOUCHER}, 400, STRATEGY_ERROR),
        (
            f"{REDEEM}?strategy=naive&strategy=locking",
            {"code": LAB_VOUCHER},
            400,
            "strategy was given 2 times",
        ),
        (REDEEM, {}, 400, CODE_ERROR),
        (REDEEM, {"code": "LAB VOUCHER"}, 400, CODE_ERROR),
        (REDEEM, {"code": "é" * 3}, 400, CODE_ERROR),
        (REDEEM, {"code": "X" * 41}, 400, CODE_ERROR),
        (REDEEM, [("code", LAB_VOUCHER), ("code", LAB_VOUCHER)], 400, "code was given 2 times"),
        (REDEEM, {"code": "NO-SUCH-VOUCHER"}, 404, "There is no voucher 'NO-SUCH-VOUCHER'."),
    ],
)
def test_bad_forms_are_refused_with_a_reason(module_server, session, path, body, status, reason, unchanged):
    reply = request(module_server.url, "POST", path, body=urlencode(body), session=session)
    assert reply.status == status, reply.text
    assert reason in reply.text


def test_anonymous_redemption_is_refused(module_server, unchanged):
    reply = request(module_server.url, "POST", REDEEM, body=f"code={LAB_VOUCHER}")
    assert reply.status == 403  # no CSRF token: Django's own refusal comes first


def test_a_session_without_a_login_is_refused(module_server, session, unchanged):
    anonymous = SessionCookies(csrftoken=session.csrftoken, sessionid="not-a-session")
    reply = request(module_server.url, "POST", REDEEM, body=f"code={LAB_VOUCHER}", session=anonymous)
    assert (reply.status, reply.text) == (403, NOT_LOGGED_IN)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_not_allowed(module_server, session, method, unchanged):
    assert request(module_server.url, method, REDEEM, session=session).status == 405


def test_a_chunked_or_non_form_body_is_refused(module_server, session, unchanged):
    chunked = request(
        module_server.url, "POST", REDEEM, body=iter([f"code={LAB_VOUCHER}".encode()]), session=session,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    json_body = request(
        module_server.url, "POST", REDEEM, body=f'{{"code": "{LAB_VOUCHER}"}}', session=session,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert (chunked.status, chunked.text) == (411, CHUNKED_BODY)
    assert (json_body.status, json_body.text) == (415, NOT_A_FORM)
