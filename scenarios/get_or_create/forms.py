"""What a client may send to the sync endpoint; anything else is refused with a reason."""

import re

from django.http import QueryDict

from races.forms import BadForm, ParsedForm, form_field, single_field, strategy_error
from scenarios.get_or_create.models import MAX_FULL_NAME_LENGTH
from scenarios.get_or_create.syncs import Strategy

FULL_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
FULL_NAME_ERROR = (
    f"full_name must be a repository's owner/name: up to {MAX_FULL_NAME_LENGTH} letters, digits, "
    "'-', '_' or '.', with one '/' between owner and name."
)
STRATEGY_ERROR = strategy_error(Strategy)


def _full_name(body: QueryDict, name: str, _) -> str:
    full_name = single_field(body, name, default="").strip()
    if len(full_name) > MAX_FULL_NAME_LENGTH or not FULL_NAME.fullmatch(full_name):
        raise BadForm(FULL_NAME_ERROR)
    # GitHub and Bitbucket names ignore case, and so does MariaDB's default collation: one case
    # here, so the three databases agree on which syncs are of the same repository.
    return full_name.lower()


class SyncRequest(ParsedForm):
    """``?strategy=`` (default naive) and a ``full_name`` form field (required), lowercased."""

    strategy: Strategy
    full_name: str = form_field(_full_name)
