"""Bad input to the transfer endpoint, through the real Gunicorn: a clear 4xx, nothing changed."""

from urllib.parse import urlencode

import pytest

from racelab.loadgen.login import SessionCookies
from races.views import CHUNKED_BODY, NOT_A_FORM, NOT_LOGGED_IN
from scenarios.transfers.forms import (
    AMOUNT_ERROR,
    DESTINATION_ERROR,
    SAME_WALLET_ERROR,
    SOURCE_ERROR,
    STRATEGY_ERROR,
)
from scenarios.transfers.provisioning import LAB_WALLETS
from tests.hardening.lab_http import request
from tests.helpers import lab_snapshot, log_in_lab_user
from tests.lab_database import command

pytestmark = pytest.mark.e2e

SEND = "/scenarios/transfer/send/"
A, B = LAB_WALLETS[:2]
FORM = {"source": A, "destination": B, "amount": "1"}
EMPTY_WALLET = "empty-wallet"
CREATE_EMPTY_WALLET = (
    "from scenarios.transfers.models import Wallet; "
    f"Wallet.objects.create(name={EMPTY_WALLET!r}, balance=0, opening_balance=0)"
)


@pytest.fixture(scope="module")
def session(module_lab, module_server, tmp_path_factory) -> SessionCookies:
    """Logged in, with the lab's wallets and one that holds nothing: what a refusal (409) needs."""
    command(module_lab, "seed_scenario", "transfer")
    command(module_lab, "shell", "-c", CREATE_EMPTY_WALLET)
    return log_in_lab_user(module_server, tmp_path_factory.mktemp("login"))


@pytest.fixture
def unchanged(module_lab, session):
    before = lab_snapshot(module_lab)
    assert any(row["model"] == "transfers.wallet" for row in before)
    yield
    assert lab_snapshot(module_lab) == before


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        (f"{SEND}?strategy=fast", FORM, 400, STRATEGY_ERROR),
        (f"{SEND}?strategy=naive&strategy=ordered", FORM, 400, "strategy was given 2 times"),
        (SEND, {}, 400, SOURCE_ERROR),
        (SEND, {**FORM, "source": "lab wallet 0"}, 400, SOURCE_ERROR),
        (SEND, {**FORM, "source": "é" * 3}, 400, SOURCE_ERROR),
        (SEND, {**FORM, "source": "W" * 41}, 400, SOURCE_ERROR),
        (
            SEND,
            [("source", A), ("source", A), ("destination", B), ("amount", "1")],
            400,
            "source was given 2",
        ),
        (SEND, {"source": A, "amount": "1"}, 400, DESTINATION_ERROR),
        (SEND, {**FORM, "destination": "lab-wallet-1;"}, 400, DESTINATION_ERROR),
        (SEND, {**FORM, "destination": A}, 400, SAME_WALLET_ERROR),
        (SEND, {"source": A, "destination": B}, 400, AMOUNT_ERROR),
        (SEND, {**FORM, "amount": "0"}, 400, AMOUNT_ERROR),
        (SEND, {**FORM, "amount": "1001"}, 400, AMOUNT_ERROR),
        (SEND, {**FORM, "amount": "-5"}, 400, AMOUNT_ERROR),
        (SEND, {**FORM, "amount": "1e3"}, 400, AMOUNT_ERROR),
        (SEND, {**FORM, "amount": "9" * 40}, 400, AMOUNT_ERROR),
        (
            SEND,
            [("source", A), ("destination", B), ("amount", "1"), ("amount", "2")],
            400,
            "amount was given 2",
        ),
        (SEND, {**FORM, "source": "no-such-wallet"}, 404, "There is no wallet 'no-such-wallet'."),
        (f"{SEND}?strategy=retry", {**FORM, "destination": "no-such-wallet"}, 404, "seed_scenario transfer"),
        (
            f"{SEND}?strategy=ordered",
            {**FORM, "source": EMPTY_WALLET, "amount": "5"},
            409,
            f"Wallet {EMPTY_WALLET} holds 0, less than the 5 to send; nothing was moved.\n",
        ),
        (SEND, {**FORM, "source": EMPTY_WALLET}, 409, f"Wallet {EMPTY_WALLET} holds 0"),
    ],
)
def test_bad_forms_are_refused_with_a_reason(module_server, session, path, body, status, reason, unchanged):
    reply = request(module_server.url, "POST", path, body=urlencode(body), session=session)
    assert reply.status == status, reply.text
    assert reason in reply.text


def test_anonymous_transfer_is_refused(module_server, unchanged):
    reply = request(module_server.url, "POST", SEND, body=urlencode(FORM))
    assert reply.status == 403  # no CSRF token: Django's own refusal comes first


def test_a_session_without_a_login_is_refused(module_server, session, unchanged):
    anonymous = SessionCookies(csrftoken=session.csrftoken, sessionid="not-a-session")
    reply = request(module_server.url, "POST", SEND, body=urlencode(FORM), session=anonymous)
    assert (reply.status, reply.text) == (403, NOT_LOGGED_IN)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_not_allowed(module_server, session, method, unchanged):
    assert request(module_server.url, method, SEND, session=session).status == 405


def test_a_chunked_or_non_form_body_is_refused(module_server, session, unchanged):
    chunked = request(
        module_server.url, "POST", SEND, body=iter([urlencode(FORM).encode()]), session=session,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    json_body = request(
        module_server.url, "POST", SEND, body=f'{{"source": "{A}", "destination": "{B}"}}', session=session,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert (chunked.status, chunked.text) == (411, CHUNKED_BODY)
    assert (json_body.status, json_body.text) == (415, NOT_A_FORM)
