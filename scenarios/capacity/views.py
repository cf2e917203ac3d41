from django.http import HttpResponse, HttpResponseNotFound

from bank.form_posts import FormPostView, HttpResponseConflict
from scenarios.capacity.forms import parse_join_request
from scenarios.capacity.participation import ActivityNotFound, JoinRefused, join


class JoinView(FormPostView):
    """POST: take a place in the activity; 200 with which place it was, 409 when it is full."""

    def parse(self, *, query, body):
        return parse_join_request(query=query, body=body)

    def perform(self, request, parsed):
        try:
            participation = join(
                user=request.user,
                activity=parsed.activity,
                strategy=parsed.strategy,
                request_started_at=request.started_at,
            )
        except ActivityNotFound as error:
            return HttpResponseNotFound(
                f"{error} Create it with `manage.py seed_scenario capacity`.\n", content_type="text/plain"
            )
        except JoinRefused as refusal:
            return HttpResponseConflict(f"{refusal}\n", content_type="text/plain")
        return HttpResponse(
            f"Joined activity {parsed.activity}: place {participation.place} of "
            f"{participation.max_participants}.\n",
            content_type="text/plain",
        )
