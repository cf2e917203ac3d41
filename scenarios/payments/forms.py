"""Parse what a client may send to the pay endpoint, refusing anything else with a reason."""

import re
from dataclasses import dataclass

from django.http import QueryDict

from bank.form_posts import BadForm, single_field
from scenarios.payments.charges import Strategy
from scenarios.payments.models import MAX_KEY_LENGTH, MAX_NUMBER_LENGTH

NUMBER = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_NUMBER_LENGTH}}}")
KEY = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_KEY_LENGTH}}}")
INVOICE_ERROR = f"invoice must be an invoice number: 1 to {MAX_NUMBER_LENGTH} letters, digits, '-' or '_'."
KEY_ERROR = (
    f"key must be the idempotency key the payment form carries: 1 to {MAX_KEY_LENGTH} letters, "
    "digits, '-' or '_' (a UUID will do), the same each time that form is sent."
)
STRATEGY_ERROR = "strategy must be one of: " + ", ".join(Strategy) + "."
STRATEGY_NAMES = frozenset(strategy.value for strategy in Strategy)


@dataclass(frozen=True)
class PaymentRequest:
    invoice: str
    key: str
    strategy: Strategy


def parse_payment_request(*, query: QueryDict, body: QueryDict) -> PaymentRequest:
    """``?strategy=`` (default naive), and ``invoice`` and ``key`` form fields (both required)."""
    strategy = single_field(query, "strategy", default=Strategy.NAIVE.value)
    if strategy not in STRATEGY_NAMES:
        raise BadForm(STRATEGY_ERROR)
    invoice = single_field(body, "invoice", default="").strip()
    if not NUMBER.fullmatch(invoice):
        raise BadForm(INVOICE_ERROR)
    key = single_field(body, "key", default="").strip()
    if not KEY.fullmatch(key):
        raise BadForm(KEY_ERROR)
    return PaymentRequest(invoice=invoice, key=key, strategy=Strategy(strategy))
