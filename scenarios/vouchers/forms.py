"""Parse what a client may send to the redeem endpoint, refusing anything else with a reason."""

from dataclasses import dataclass

from django.http import QueryDict

from races.forms import chosen_strategy, strategy_error, token_field
from scenarios.vouchers.models import MAX_CODE_LENGTH
from scenarios.vouchers.redemptions import Strategy

CODE_ERROR = f"code must be a voucher code: 1 to {MAX_CODE_LENGTH} letters, digits, '-' or '_'."
STRATEGY_ERROR = strategy_error(Strategy)


@dataclass(frozen=True)
class RedemptionRequest:
    code: str
    strategy: Strategy


def parse_redemption_request(*, query: QueryDict, body: QueryDict) -> RedemptionRequest:
    """``?strategy=`` (default naive) and a ``code`` form field (required)."""
    strategy = chosen_strategy(query, Strategy)
    code = token_field(body, "code", max_length=MAX_CODE_LENGTH, error=CODE_ERROR)
    return RedemptionRequest(code=code, strategy=strategy)
