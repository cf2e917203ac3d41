"""Parse what a client may send to the pay endpoint, refusing anything else with a reason."""

from dataclasses import dataclass

from django.http import QueryDict

from races.forms import chosen_strategy, strategy_error, token_field
from scenarios.payments.charges import Strategy
from scenarios.payments.models import MAX_KEY_LENGTH, MAX_NUMBER_LENGTH

INVOICE_ERROR = f"invoice must be an invoice number: 1 to {MAX_NUMBER_LENGTH} letters, digits, '-' or '_'."
KEY_ERROR = (
    f"key must be the idempotency key the payment form carries: 1 to {MAX_KEY_LENGTH} letters, "
    "digits, '-' or '_' (a UUID will do), the same each time that form is sent."
)
STRATEGY_ERROR = strategy_error(Strategy)


@dataclass(frozen=True)
class PaymentRequest:
    invoice: str
    key: str
    strategy: Strategy


def parse_payment_request(*, query: QueryDict, body: QueryDict) -> PaymentRequest:
    """``?strategy=`` (default naive), and ``invoice`` and ``key`` form fields (both required)."""
    strategy = chosen_strategy(query, Strategy)
    invoice = token_field(body, "invoice", max_length=MAX_NUMBER_LENGTH, error=INVOICE_ERROR)
    key = token_field(body, "key", max_length=MAX_KEY_LENGTH, error=KEY_ERROR)
    return PaymentRequest(invoice=invoice, key=key, strategy=strategy)
