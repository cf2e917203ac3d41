from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseNotFound
from django.views import View

from bank.form_posts import BadForm, HttpResponseConflict, refuse_unreadable_post
from scenarios.capacity.forms import parse_join_request
from scenarios.capacity.participation import ActivityNotFound, JoinRefused, join


class JoinView(View):
    """POST: take a place in the activity; 200 with which place it was, 409 when it is full."""

    http_method_names = ["post"]

    def post(self, request):
        refusal = refuse_unreadable_post(request)
        if refusal is not None:
            return refusal
        try:
            parsed = parse_join_request(query=request.GET, body=request.POST)
        except BadForm as error:
            return HttpResponseBadRequest(f"{error}\n", content_type="text/plain")
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
