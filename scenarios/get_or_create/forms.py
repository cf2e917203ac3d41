"""Parse what a client may send to the sync endpoint, refusing anything else with a reason."""

import re
from dataclasses import dataclass

from django.http import QueryDict

from races.forms import BadForm, chosen_strategy, single_field, strategy_error
from scenarios.get_or_create.models import MAX_FULL_NAME_LENGTH
from scenarios.get_or_create.syncs import Strategy

FULL_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
FULL_NAME_ERROR = (
    f"full_name must be a repository's owner/name: up to {MAX_FULL_NAME_LENGTH} letters, digits, "
    "'-', '_' or '.', with one '/' between owner and name."
)
STRATEGY_ERROR = strategy_error(Strategy)


@dataclass(frozen=True)
class SyncRequest:
    full_name: str
    strategy: Strategy


def parse_sync_request(*, query: QueryDict, body: QueryDict) -> SyncRequest:
    """``?strategy=`` (default naive) and a ``full_name`` form field (required), lowercased."""
    strategy = chosen_strategy(query, Strategy)
    full_name = single_field(body, "full_name", default="").strip()
    if len(full_name) > MAX_FULL_NAME_LENGTH or not FULL_NAME.fullmatch(full_name):
        raise BadForm(FULL_NAME_ERROR)
    # GitHub and Bitbucket names ignore case, and so does MariaDB's default collation: one case
    # here, so the three databases agree on which syncs are of the same repository.
    return SyncRequest(full_name=full_name.lower(), strategy=strategy)
