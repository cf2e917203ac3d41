from django.http import HttpResponse

from bank.form_posts import FormPostView, HttpResponseConflict
from scenarios.signups.forms import parse_registration_request
from scenarios.signups.registrations import RegistrationRefused, register


class RegisterView(FormPostView):
    """POST: sign the address ``email`` up once; 200 with its signup, 409 when it has one."""

    def parse(self, *, query, body):
        return parse_registration_request(query=query, body=body)

    def perform(self, request, parsed):
        try:
            registration = register(
                user=request.user,
                email=parsed.email,
                strategy=parsed.strategy,
                request_started_at=request.started_at,
            )
        except RegistrationRefused as refusal:
            return HttpResponseConflict(f"{refusal}\n", content_type="text/plain")
        return HttpResponse(
            f"registered: {registration.email} (signup {registration.signup_id}).\n",
            content_type="text/plain",
        )
