"""Parse what a client may send to the withdraw endpoint, refusing anything else with a reason."""

import re
from dataclasses import dataclass

from django.http import QueryDict

from accounts.withdrawals import MAX_WITHDRAWAL_AMOUNT, Strategy
from bank.form_posts import BadForm, single_field

DEFAULT_AMOUNT = 1
AMOUNT_ERROR = f"amount must be a whole number from 1 to {MAX_WITHDRAWAL_AMOUNT}."
STRATEGY_ERROR = "strategy must be one of: " + ", ".join(Strategy) + "."
STRATEGY_NAMES = frozenset(strategy.value for strategy in Strategy)
_DIGITS = re.compile(r"[0-9]{1,16}")


@dataclass(frozen=True)
class WithdrawalRequest:
    amount: int
    strategy: Strategy


def parse_withdrawal_request(*, query: QueryDict, body: QueryDict) -> WithdrawalRequest:
    """``?strategy=`` (default naive) and an optional ``amount`` form field (default 1).

    An ``amount`` that is present must be a plain whole number in range: an empty field is an
    error, not the default.
    """
    strategy_value = single_field(query, "strategy", default=Strategy.NAIVE.value)
    if strategy_value not in STRATEGY_NAMES:
        raise BadForm(STRATEGY_ERROR)
    amount_value = single_field(body, "amount", default=str(DEFAULT_AMOUNT)).strip()
    if not _DIGITS.fullmatch(amount_value) or not 1 <= int(amount_value) <= MAX_WITHDRAWAL_AMOUNT:
        raise BadForm(AMOUNT_ERROR)
    return WithdrawalRequest(amount=int(amount_value), strategy=Strategy(strategy_value))
