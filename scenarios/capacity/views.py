from races.views import FormPostView
from scenarios.capacity.forms import JoinRequest
from scenarios.capacity.participation import join


class JoinView(FormPostView):
    """POST: take a place in the activity; 200 with which place it was, 409 when it is full."""

    form = JoinRequest
    service = staticmethod(join)
    answer = "Joined activity {form.activity}: place {result.place} of {result.max_participants}."
    create_missing = "Create it with `manage.py seed_scenario capacity`."
