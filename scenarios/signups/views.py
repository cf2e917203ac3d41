from races.views import FormPostView
from scenarios.signups.forms import RegistrationRequest
from scenarios.signups.registrations import register


class RegisterView(FormPostView):
    """POST: sign the address ``email`` up once; 200 with its signup, 409 when it has one."""

    form = RegistrationRequest
    service = staticmethod(register)
    answer = "registered: {result.email} (signup {result.signup_id})."
