"""Parse what a client may send to the redeem endpoint, refusing anything else with a reason."""

import re
from dataclasses import dataclass

from django.http import QueryDict

from bank.form_posts import BadForm, single_field
from scenarios.vouchers.models import MAX_CODE_LENGTH
from scenarios.vouchers.redemptions import Strategy

CODE = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_CODE_LENGTH}}}")
CODE_ERROR = f"code must be a voucher code: 1 to {MAX_CODE_LENGTH} letters, digits, '-' or '_'."
STRATEGY_ERROR = "strategy must be one of: " + ", ".join(Strategy) + "."
STRATEGY_NAMES = frozenset(strategy.value for strategy in Strategy)


@dataclass(frozen=True)
class RedemptionRequest:
    code: str
    strategy: Strategy


def parse_redemption_request(*, query: QueryDict, body: QueryDict) -> RedemptionRequest:
    """``?strategy=`` (default naive) and a ``code`` form field (required)."""
    strategy = single_field(query, "strategy", default=Strategy.NAIVE.value)
    if strategy not in STRATEGY_NAMES:
        raise BadForm(STRATEGY_ERROR)
    code = single_field(body, "code", default="").strip()
    if not CODE.fullmatch(code):
        raise BadForm(CODE_ERROR)
    return RedemptionRequest(code=code, strategy=Strategy(strategy))
