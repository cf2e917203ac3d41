from django.http import HttpResponse

from races.views import FormPostView
from scenarios.signups.forms import parse_registration_request
from scenarios.signups.registrations import register


class RegisterView(FormPostView):
    """POST: sign the address ``email`` up once; 200 with its signup, 409 when it has one."""

    parse = staticmethod(parse_registration_request)

    def perform(self, request, parsed):
        registration = register(
            user=request.user,
            email=parsed.email,
            strategy=parsed.strategy,
            request_started_at=request.started_at,
        )
        return HttpResponse(
            f"registered: {registration.email} (signup {registration.signup_id}).\n",
            content_type="text/plain",
        )
