"""What a client may send to the register endpoint; anything else is refused with a reason."""

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import QueryDict

from races.forms import BadForm, ParsedForm, form_field, single_field, strategy_error
from scenarios.signups.models import MAX_EMAIL_LENGTH
from scenarios.signups.registrations import Strategy

EMAIL_ERROR = (
    f"email must be an email address such as name@example.com, at most {MAX_EMAIL_LENGTH} characters."
)
STRATEGY_ERROR = strategy_error(Strategy)


def _email(body: QueryDict, name: str, _) -> str:
    # Lower-cased before it is measured: a few letters grow when lower-cased (İ becomes i̇).
    email = single_field(body, name, default="").strip().lower()
    if len(email) > MAX_EMAIL_LENGTH:
        raise BadForm(EMAIL_ERROR)
    try:
        validate_email(email)
    except ValidationError:
        raise BadForm(EMAIL_ERROR) from None
    return email


class RegistrationRequest(ParsedForm):
    """``?strategy=`` (default naive) and an ``email`` form field (required)."""

    strategy: Strategy
    email: str = form_field(_email)
