from django.http import HttpResponse, HttpResponseBadRequest
from django.views import View

from bank.form_posts import BadForm, HttpResponseConflict, refuse_unreadable_post
from scenarios.signups.forms import parse_registration_request
from scenarios.signups.registrations import RegistrationRefused, register


class RegisterView(View):
    """POST: sign the address ``email`` up once; 200 with its signup, 409 when it has one."""

    http_method_names = ["post"]

    def post(self, request):
        refusal = refuse_unreadable_post(request)
        if refusal is not None:
            return refusal
        try:
            parsed = parse_registration_request(query=request.GET, body=request.POST)
        except BadForm as error:
            return HttpResponseBadRequest(f"{error}\n", content_type="text/plain")
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
