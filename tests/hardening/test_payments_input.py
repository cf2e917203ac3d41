"""Bad input to the payment endpoint, through the real Gunicorn: a clear 4xx, nothing changed."""

from urllib.parse import urlencode

import pytest

from racelab.loadgen.login import SessionCookies
from races.views import CHUNKED_BODY, NOT_A_FORM, NOT_LOGGED_IN
from scenarios.payments.forms import INVOICE_ERROR, KEY_ERROR, STRATEGY_ERROR
from scenarios.payments.provisioning import LAB_INVOICE, LAB_KEY
from tests.hardening.lab_http import request
from tests.helpers import lab_snapshot, log_in_lab_user
from tests.lab_database import command

pytestmark = pytest.mark.e2e

PAY = "/scenarios/payment/pay/"
OTHER_INVOICE = "OTHER-INVOICE"
FORM = {"invoice": LAB_INVOICE, "key": LAB_KEY}
ALREADY_PAID = f"Invoice {LAB_INVOICE} is already paid; nothing was charged.\n"
CREATE_OTHER_INVOICE = (
    "from scenarios.payments.models import Invoice; "
    f"Invoice.objects.create(number={OTHER_INVOICE!r}, amount=7)"
)


@pytest.fixture(scope="module")
def session(module_lab, module_server, tmp_path_factory) -> SessionCookies:
    """Logged in, with the lab invoice paid by the form carrying LAB_KEY and a second invoice
    unpaid: what a refusal (409) and a key sent again for another invoice (422) need."""
    command(module_lab, "seed_scenario", "payment")
    command(module_lab, "shell", "-c", CREATE_OTHER_INVOICE)
    cookies = log_in_lab_user(module_server, tmp_path_factory.mktemp("login"))
    paid = request(
        module_server.url, "POST", f"{PAY}?strategy=idempotency_key", body=urlencode(FORM), session=cookies
    )
    assert paid.status == 200, paid.text
    return cookies


@pytest.fixture
def unchanged(module_lab, session):
    before = lab_snapshot(module_lab)
    assert any(row["model"] == "payments.idempotencykey" for row in before)
    yield
    assert lab_snapshot(module_lab) == before


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        (f"{PAY}?strategy=fast", FORM, 400, STRATEGY_ERROR),
        (f"{PAY}?strategy=naive&strategy=locking", FORM, 400, "strategy was given 2 times"),
        (PAY, {"key": LAB_KEY}, 400, INVOICE_ERROR),
        (PAY, {"invoice": "LAB INVOICE", "key": LAB_KEY}, 400, INVOICE_ERROR),
        (PAY, {"invoice": "é" * 3, "key": LAB_KEY}, 400, INVOICE_ERROR),
        (PAY, {"invoice": "X" * 41, "key": LAB_KEY}, 400, INVOICE_ERROR),
        (PAY, [("invoice", LAB_INVOICE)] * 2 + [("key", LAB_KEY)], 400, "invoice was given 2 times"),
        (PAY, {"invoice": LAB_INVOICE}, 400, KEY_ERROR),
        (PAY, {"invoice": LAB_INVOICE, "key": ""}, 400, KEY_ERROR),
        (PAY, {"invoice": LAB_INVOICE, "key": "LAB PAYMENT"}, 400, KEY_ERROR),
        (PAY, {"invoice": LAB_INVOICE, "key": "ключ"}, 400, KEY_ERROR),
        (PAY, {"invoice": LAB_INVOICE, "key": "K" * 65}, 400, KEY_ERROR),
        (PAY, [("invoice", LAB_INVOICE), ("key", LAB_KEY), ("key", "K2")], 400, "key was given 2 times"),
        (PAY, {"invoice": "NO-SUCH-INVOICE", "key": LAB_KEY}, 404, "There is no invoice 'NO-SUCH-INVOICE'."),
        (
            f"{PAY}?strategy=idempotency_key",
            {"invoice": "NO-SUCH-INVOICE", "key": "LAB-PAYMENT-2"},
            404,
            "Create it with `manage.py seed_scenario payment`.",
        ),
        (
            f"{PAY}?strategy=idempotency_key",
            {"invoice": OTHER_INVOICE, "key": LAB_KEY},
            422,
            f"Idempotency key {LAB_KEY} was sent for invoice {LAB_INVOICE}, not {OTHER_INVOICE}",
        ),
    ],
)  # fmt: skip
def test_bad_forms_are_refused_with_a_reason(module_server, session, path, body, status, reason, unchanged):
    reply = request(module_server.url, "POST", path, body=urlencode(body), session=session)
    assert reply.status == status, reply.text
    assert reason in reply.text


@pytest.mark.parametrize("strategy", ["naive", "locking"])
def test_a_paid_invoice_is_refused_with_409_and_charged_nothing(module_server, session, strategy, unchanged):
    form = {"invoice": LAB_INVOICE, "key": "LAB-PAYMENT-2"}
    reply = request(
        module_server.url, "POST", f"{PAY}?strategy={strategy}", body=urlencode(form), session=session
    )
    assert (reply.status, reply.text) == (409, ALREADY_PAID)


def test_the_same_form_sent_again_gets_its_first_answer_and_charges_nothing(
    module_server, session, unchanged
):
    reply = request(
        module_server.url, "POST", f"{PAY}?strategy=idempotency_key", body=urlencode(FORM), session=session
    )
    assert reply.status == 200, reply.text
    assert reply.text.startswith(f"Invoice {LAB_INVOICE} paid: 100 charged as payment ")


def test_anonymous_payment_is_refused(module_server, unchanged):
    reply = request(module_server.url, "POST", PAY, body=urlencode(FORM))
    assert reply.status == 403  # no CSRF token: Django's own refusal comes first


def test_a_session_without_a_login_is_refused(module_server, session, unchanged):
    anonymous = SessionCookies(csrftoken=session.csrftoken, sessionid="not-a-session")
    reply = request(module_server.url, "POST", PAY, body=urlencode(FORM), session=anonymous)
    assert (reply.status, reply.text) == (403, NOT_LOGGED_IN)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_not_allowed(module_server, session, method, unchanged):
    assert request(module_server.url, method, PAY, session=session).status == 405


def test_a_chunked_or_non_form_body_is_refused(module_server, session, unchanged):
    chunked = request(
        module_server.url, "POST", PAY, body=iter([urlencode(FORM).encode()]), session=session,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    json_body = request(
        module_server.url, "POST", PAY, body=f'{{"invoice": "{LAB_INVOICE}", "key": "{LAB_KEY}"}}',
        session=session, headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert (chunked.status, chunked.text) == (411, CHUNKED_BODY)
    assert (json_body.status, json_body.text) == (415, NOT_A_FORM)
