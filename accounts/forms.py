"""Parse what a client may send to the withdraw endpoint, refusing anything else with a reason."""

from dataclasses import dataclass

from django.http import QueryDict

from accounts.withdrawals import MAX_WITHDRAWAL_AMOUNT, Strategy
from races.forms import chosen_strategy, strategy_error, whole_number_field

DEFAULT_AMOUNT = 1
AMOUNT_ERROR = f"amount must be a whole number from 1 to {MAX_WITHDRAWAL_AMOUNT}."
STRATEGY_ERROR = strategy_error(Strategy)


@dataclass(frozen=True)
class WithdrawalRequest:
    amount: int
    strategy: Strategy


def parse_withdrawal_request(*, query: QueryDict, body: QueryDict) -> WithdrawalRequest:
    """``?strategy=`` (default naive) and an optional ``amount`` form field (default 1).

    An ``amount`` that is present must be a plain whole number in range: an empty field is an
    error, not the default.
    """
    strategy = chosen_strategy(query, Strategy)
    amount = whole_number_field(
        body, "amount", maximum=MAX_WITHDRAWAL_AMOUNT, error=AMOUNT_ERROR, default=DEFAULT_AMOUNT
    )
    return WithdrawalRequest(amount=amount, strategy=strategy)
