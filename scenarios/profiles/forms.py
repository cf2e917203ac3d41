"""What a client may send to the edit endpoint; anything else is refused with a reason."""

import unicodedata

from django.http import QueryDict

from races.forms import BadForm, ParsedForm, chosen_strategy, single_field, strategy_error, token_field
from scenarios.profiles.edits import Strategy
from scenarios.profiles.models import MAX_HANDLE_LENGTH, MAX_TEXT_LENGTH, ProfileField

PROFILE_ERROR = f"profile must be a profile's handle: 1 to {MAX_HANDLE_LENGTH} letters, digits, '-' or '_'."
FIELDS_ERROR = "Send profile and exactly one field to set: " + " or ".join(ProfileField) + "."
STRATEGY_ERROR = strategy_error(Strategy)


def value_error(field: ProfileField) -> str:
    return f"{field} must be 1 to {MAX_TEXT_LENGTH} characters of text, with no control characters."


class EditRequest(ParsedForm):
    strategy: Strategy
    handle: str
    field: ProfileField
    value: str

    @classmethod
    def parse(cls, *, query: QueryDict, body: QueryDict) -> "EditRequest":
        """``?strategy=`` (default naive), a ``profile`` form field and exactly one of the
        profile's fields with its new value (all required)."""
        strategy = chosen_strategy(query, Strategy)
        handle = token_field(body, "profile", max_length=MAX_HANDLE_LENGTH, error=PROFILE_ERROR)
        # A misspelt field would otherwise be dropped in silence, and the answer say 200.
        unknown = sorted(set(body) - {"profile", *ProfileField})
        if unknown:
            raise BadForm(f"{unknown[0]!r} is not a field of a profile. {FIELDS_ERROR}")
        given = [field for field in ProfileField if field in body]
        if len(given) != 1:
            raise BadForm(FIELDS_ERROR)
        (field,) = given
        value = single_field(body, field, default="").strip()
        if not 1 <= len(value) <= MAX_TEXT_LENGTH or any(
            unicodedata.category(char) == "Cc" for char in value
        ):
            raise BadForm(value_error(field))
        return cls(handle=handle, field=field, value=value, strategy=strategy)
