"""Parse what a client may send to the register endpoint, refusing anything else with a reason."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import QueryDict

from races.forms import BadForm, chosen_strategy, single_field, strategy_error
from scenarios.signups.models import MAX_EMAIL_LENGTH
from scenarios.signups.registrations import Strategy

EMAIL_ERROR = (
    f"email must be an email address such as name@example.com, at most {MAX_EMAIL_LENGTH} characters."
)
STRATEGY_ERROR = strategy_error(Strategy)


@dataclass(frozen=True)
class RegistrationRequest:
    email: str
    strategy: Strategy


def parse_registration_request(*, query: QueryDict, body: QueryDict) -> RegistrationRequest:
    """``?strategy=`` (default naive) and an ``email`` form field (required)."""
    strategy = chosen_strategy(query, Strategy)
    # Lower-cased before it is measured: a few letters grow when lower-cased (İ becomes i̇).
    email = single_field(body, "email", default="").strip().lower()
    if len(email) > MAX_EMAIL_LENGTH:
        raise BadForm(EMAIL_ERROR)
    try:
        validate_email(email)
    except ValidationError:
        raise BadForm(EMAIL_ERROR) from None
    return RegistrationRequest(email=email, strategy=strategy)
