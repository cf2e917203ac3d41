from django.http import HttpResponse, HttpResponseNotFound

from bank.form_posts import FormPostView, HttpResponseConflict
from scenarios.profiles.edits import EditRefused, ProfileNotFound, edit_profile
from scenarios.profiles.forms import parse_edit_request


class EditProfileView(FormPostView):
    """PATCH: set one field of the profile ``profile``; 200 with what it set, 409 when the
    version strategy finds the profile changed since it read it."""

    http_method_names = ["patch"]

    def patch(self, request):
        return self.handle_form(request)

    def parse(self, *, query, body):
        return parse_edit_request(query=query, body=body)

    def perform(self, request, parsed):
        try:
            edit = edit_profile(
                handle=parsed.handle,
                field=parsed.field,
                value=parsed.value,
                strategy=parsed.strategy,
                request_started_at=request.started_at,
            )
        except ProfileNotFound as error:
            return HttpResponseNotFound(
                f"{error} Create it with `manage.py seed_scenario profile`.\n", content_type="text/plain"
            )
        except EditRefused as refusal:
            return HttpResponseConflict(f"{refusal}\n", content_type="text/plain")
        return HttpResponse(
            f"Profile {edit.handle}: {edit.field} set to {edit.value!r} (edit {edit.edit_id}).\n",
            content_type="text/plain",
        )
