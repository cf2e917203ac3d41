"""Parse what a client may send to the join endpoint, refusing anything else with a reason."""

import re
from dataclasses import dataclass

from django.http import QueryDict

from bank.form_posts import BadForm, single_field
from scenarios.capacity.models import MAX_NAME_LENGTH
from scenarios.capacity.participation import Strategy

NAME = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_NAME_LENGTH}}}")
ACTIVITY_ERROR = f"activity must be an activity's name: 1 to {MAX_NAME_LENGTH} letters, digits, '-' or '_'."
STRATEGY_ERROR = "strategy must be one of: " + ", ".join(Strategy) + "."
STRATEGY_NAMES = frozenset(strategy.value for strategy in Strategy)


@dataclass(frozen=True)
class JoinRequest:
    activity: str
    strategy: Strategy


def parse_join_request(*, query: QueryDict, body: QueryDict) -> JoinRequest:
    """``?strategy=`` (default naive) and an ``activity`` form field (required)."""
    strategy = single_field(query, "strategy", default=Strategy.NAIVE.value)
    if strategy not in STRATEGY_NAMES:
        raise BadForm(STRATEGY_ERROR)
    activity = single_field(body, "activity", default="").strip()
    if not NAME.fullmatch(activity):
        raise BadForm(ACTIVITY_ERROR)
    return JoinRequest(activity=activity, strategy=Strategy(strategy))
