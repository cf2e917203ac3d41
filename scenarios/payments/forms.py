"""What a client may send to the pay endpoint; anything else is refused with a reason."""

from races.forms import ParsedForm, strategy_error, token
from scenarios.payments.charges import Strategy
from scenarios.payments.models import MAX_KEY_LENGTH, MAX_NUMBER_LENGTH

INVOICE_ERROR = f"invoice must be an invoice number: 1 to {MAX_NUMBER_LENGTH} letters, digits, '-' or '_'."
KEY_ERROR = (
    f"key must be the idempotency key the payment form carries: 1 to {MAX_KEY_LENGTH} letters, "
    "digits, '-' or '_' (a UUID will do), the same each time that form is sent."
)
STRATEGY_ERROR = strategy_error(Strategy)


class PaymentRequest(ParsedForm):
    """``?strategy=`` (default naive), and ``invoice`` and ``key`` form fields (both required)."""

    strategy: Strategy
    invoice: str = token(max_length=MAX_NUMBER_LENGTH, error=INVOICE_ERROR)
    key: str = token(max_length=MAX_KEY_LENGTH, error=KEY_ERROR)
