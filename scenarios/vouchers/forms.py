"""What a client may send to the redeem endpoint; anything else is refused with a reason."""

from races.forms import ParsedForm, strategy_error, token
from scenarios.vouchers.models import MAX_CODE_LENGTH
from scenarios.vouchers.redemptions import Strategy

CODE_ERROR = f"code must be a voucher code: 1 to {MAX_CODE_LENGTH} letters, digits, '-' or '_'."
STRATEGY_ERROR = strategy_error(Strategy)


class RedemptionRequest(ParsedForm):
    """``?strategy=`` (default naive) and a ``code`` form field (required)."""

    strategy: Strategy
    code: str = token(max_length=MAX_CODE_LENGTH, error=CODE_ERROR)
