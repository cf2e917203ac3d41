"""Parse what a client may send to the send endpoint, refusing anything else with a reason."""

from dataclasses import dataclass

from django.http import QueryDict

from races.forms import BadForm, chosen_strategy, strategy_error, token_field, whole_number_field
from scenarios.transfers.models import MAX_NAME_LENGTH, MAX_TRANSFER_AMOUNT
from scenarios.transfers.movements import Strategy


def _wallet_error(field: str) -> str:
    return f"{field} must be a wallet's name: 1 to {MAX_NAME_LENGTH} letters, digits, '-' or '_'."


SOURCE_ERROR = _wallet_error("source")
DESTINATION_ERROR = _wallet_error("destination")
SAME_WALLET_ERROR = "source and destination must be two different wallets."
AMOUNT_ERROR = f"amount must be a whole number from 1 to {MAX_TRANSFER_AMOUNT}."
STRATEGY_ERROR = strategy_error(Strategy)


@dataclass(frozen=True)
class TransferRequest:
    source: str
    destination: str
    amount: int
    strategy: Strategy


def parse_transfer_request(*, query: QueryDict, body: QueryDict) -> TransferRequest:
    """``?strategy=`` (default naive), and ``source``, ``destination`` and ``amount`` form fields
    (all required)."""
    strategy = chosen_strategy(query, Strategy)
    source = token_field(body, "source", max_length=MAX_NAME_LENGTH, error=SOURCE_ERROR)
    destination = token_field(body, "destination", max_length=MAX_NAME_LENGTH, error=DESTINATION_ERROR)
    if source == destination:
        raise BadForm(SAME_WALLET_ERROR)
    amount = whole_number_field(body, "amount", maximum=MAX_TRANSFER_AMOUNT, error=AMOUNT_ERROR)
    return TransferRequest(source=source, destination=destination, amount=amount, strategy=strategy)
