from django.http import HttpResponse

from races.views import FormPostView
from scenarios.capacity.forms import parse_join_request
from scenarios.capacity.participation import join


class JoinView(FormPostView):
    """POST: take a place in the activity; 200 with which place it was, 409 when it is full."""

    parse = staticmethod(parse_join_request)
    create_missing = "Create it with `manage.py seed_scenario capacity`."

    def perform(self, request, parsed):
        participation = join(
            user=request.user,
            activity=parsed.activity,
            strategy=parsed.strategy,
            request_started_at=request.started_at,
        )
        return HttpResponse(
            f"Joined activity {parsed.activity}: place {participation.place} of "
            f"{participation.max_participants}.\n",
            content_type="text/plain",
        )
