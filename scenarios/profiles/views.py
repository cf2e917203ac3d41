from races.views import FormPostView
from scenarios.profiles.edits import edit_profile
from scenarios.profiles.forms import EditRequest


class EditProfileView(FormPostView):
    """PATCH: set one field of the profile ``profile``; 200 with what it set, 409 when the
    version strategy finds the profile changed since it read it."""

    http_method_names = ["patch"]
    form = EditRequest
    service = staticmethod(edit_profile)
    # edit_profile takes no user: the form names the profile, whoever sends it.
    for_user = False
    answer = "Profile {result.handle}: {result.field} set to {result.value!r} (edit {result.edit_id})."
    create_missing = "Create it with `manage.py seed_scenario profile`."
