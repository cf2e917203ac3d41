"""What a client may send to the withdraw endpoint; anything else is refused with a reason."""

from accounts.withdrawals import MAX_WITHDRAWAL_AMOUNT, Strategy
from races.forms import ParsedForm, strategy_error, whole_number

DEFAULT_AMOUNT = 1
AMOUNT_ERROR = f"amount must be a whole number from 1 to {MAX_WITHDRAWAL_AMOUNT}."
STRATEGY_ERROR = strategy_error(Strategy)


class WithdrawalRequest(ParsedForm):
    """``?strategy=`` (default naive) and an optional ``amount`` form field (default 1).

    An ``amount`` that is present must be a plain whole number in range: an empty field is an
    error, not the default.
    """

    strategy: Strategy
    amount: int = whole_number(maximum=MAX_WITHDRAWAL_AMOUNT, error=AMOUNT_ERROR, default=DEFAULT_AMOUNT)


parse_withdrawal_request = WithdrawalRequest.parse
