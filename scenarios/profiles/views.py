from django.http import HttpResponse

from races.views import FormPostView
from scenarios.profiles.edits import edit_profile
from scenarios.profiles.forms import parse_edit_request


class EditProfileView(FormPostView):
    """PATCH: set one field of the profile ``profile``; 200 with what it set, 409 when the
    version strategy finds the profile changed since it read it."""

    http_method_names = ["patch"]
    parse = staticmethod(parse_edit_request)
    create_missing = "Create it with `manage.py seed_scenario profile`."

    def patch(self, request):
        return self.handle_form(request)

    def perform(self, request, parsed):
        edit = edit_profile(
            handle=parsed.handle,
            field=parsed.field,
            value=parsed.value,
            strategy=parsed.strategy,
            request_started_at=request.started_at,
        )
        return HttpResponse(
            f"Profile {edit.handle}: {edit.field} set to {edit.value!r} (edit {edit.edit_id}).\n",
            content_type="text/plain",
        )
