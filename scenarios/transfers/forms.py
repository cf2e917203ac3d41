"""What a client may send to the send endpoint; anything else is refused with a reason."""

from collections.abc import Mapping

from django.http import QueryDict

from races.forms import BadForm, ParsedForm, form_field, strategy_error, token, token_field, whole_number
from scenarios.transfers.models import MAX_NAME_LENGTH, MAX_TRANSFER_AMOUNT
from scenarios.transfers.movements import Strategy


def _wallet_error(field: str) -> str:
    return f"{field} must be a wallet's name: 1 to {MAX_NAME_LENGTH} letters, digits, '-' or '_'."


SOURCE_ERROR = _wallet_error("source")
DESTINATION_ERROR = _wallet_error("destination")
SAME_WALLET_ERROR = "source and destination must be two different wallets."
AMOUNT_ERROR = f"amount must be a whole number from 1 to {MAX_TRANSFER_AMOUNT}."
STRATEGY_ERROR = strategy_error(Strategy)


def _another_wallet(body: QueryDict, name: str, earlier: Mapping[str, object]) -> str:
    destination = token_field(body, name, max_length=MAX_NAME_LENGTH, error=DESTINATION_ERROR)
    if destination == earlier["source"]:
        raise BadForm(SAME_WALLET_ERROR)
    return destination


class TransferRequest(ParsedForm):
    """``?strategy=`` (default naive), and ``source``, ``destination`` and ``amount`` form fields
    (all required)."""

    strategy: Strategy
    source: str = token(max_length=MAX_NAME_LENGTH, error=SOURCE_ERROR)
    destination: str = form_field(_another_wallet)
    amount: int = whole_number(maximum=MAX_TRANSFER_AMOUNT, error=AMOUNT_ERROR)
