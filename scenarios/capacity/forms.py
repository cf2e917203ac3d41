"""Parse what a client may send to the join endpoint, refusing anything else with a reason."""

from dataclasses import dataclass

from django.http import QueryDict

from races.forms import chosen_strategy, strategy_error, token_field
from scenarios.capacity.models import MAX_NAME_LENGTH
from scenarios.capacity.participation import Strategy

ACTIVITY_ERROR = f"activity must be an activity's name: 1 to {MAX_NAME_LENGTH} letters, digits, '-' or '_'."
STRATEGY_ERROR = strategy_error(Strategy)


@dataclass(frozen=True)
class JoinRequest:
    activity: str
    strategy: Strategy


def parse_join_request(*, query: QueryDict, body: QueryDict) -> JoinRequest:
    """``?strategy=`` (default naive) and an ``activity`` form field (required)."""
    strategy = chosen_strategy(query, Strategy)
    activity = token_field(body, "activity", max_length=MAX_NAME_LENGTH, error=ACTIVITY_ERROR)
    return JoinRequest(activity=activity, strategy=strategy)
