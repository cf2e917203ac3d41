from django.http import HttpResponse

from races.views import FormPostView
from scenarios.get_or_create.forms import parse_sync_request
from scenarios.get_or_create.syncs import sync_repository


class SyncView(FormPostView):
    """POST: the row of the repository ``full_name``, found or created; 200 with its id.

    The naive strategy's ``MultipleObjectsReturned`` is not caught: once a race has left two rows
    of a name, every naive sync of it answers 500, as readthedocs.org's did. That is the bug.
    """

    parse = staticmethod(parse_sync_request)

    def perform(self, request, parsed):
        synced = sync_repository(
            user=request.user,
            full_name=parsed.full_name,
            strategy=parsed.strategy,
            request_started_at=request.started_at,
        )
        action = "created" if synced.created else "found"
        return HttpResponse(
            f"Repository {parsed.full_name} {action}: row {synced.repository_id}.\n",
            content_type="text/plain",
        )
