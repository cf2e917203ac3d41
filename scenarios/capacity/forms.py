"""What a client may send to the join endpoint; anything else is refused with a reason."""

from races.forms import ParsedForm, strategy_error, token
from scenarios.capacity.models import MAX_NAME_LENGTH
from scenarios.capacity.participation import Strategy

ACTIVITY_ERROR = f"activity must be an activity's name: 1 to {MAX_NAME_LENGTH} letters, digits, '-' or '_'."
STRATEGY_ERROR = strategy_error(Strategy)


class JoinRequest(ParsedForm):
    """``?strategy=`` (default naive) and an ``activity`` form field (required)."""

    strategy: Strategy
    activity: str = token(max_length=MAX_NAME_LENGTH, error=ACTIVITY_ERROR)
