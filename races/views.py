"""The view every race's endpoint is: a logged-in user's form, refused with a plain-text reason
(4xx) when it cannot be read or parsed, and the service's ``NotFound`` and ``Refused`` answered
404 and 409 with theirs, in one place for the eight endpoints."""

from django.http import (
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseNotFound,
    QueryDict,
)
from django.views import View

from races.forms import BadForm, read_form
from races.refusals import NotFound, Refused

NOT_LOGGED_IN = "Log in first: POST your username and password to /auth/login/.\n"
CHUNKED_BODY = "Send the form with a Content-Length header: a chunked body is not read.\n"
NOT_A_FORM = "Send the fields as a form: Content-Type: application/x-www-form-urlencoded.\n"
URLENCODED = "application/x-www-form-urlencoded"
# Django parses multipart bodies for POST only; any other method's body is read as urlencoded.
POST_CONTENT_TYPES = (URLENCODED, "multipart/form-data")


class HttpResponseConflict(HttpResponse):
    status_code = 409


class HttpResponseLengthRequired(HttpResponse):
    status_code = 411


class HttpResponseUnsupportedMediaType(HttpResponse):
    status_code = 415


def not_logged_in() -> HttpResponse:
    return HttpResponseForbidden(NOT_LOGGED_IN, content_type="text/plain")


def refuse_unreadable_post(request) -> HttpResponse | None:
    """The answer to a form (POSTed, or PATCHed) that must not reach the form parser, or None
    when it may."""
    if not request.user.is_authenticated:
        return not_logged_in()
    # Neither a chunked body nor one that is not a form is read: either would leave the form
    # empty, and the endpoint would act on its defaults instead of what was sent.
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        return HttpResponseLengthRequired(CHUNKED_BODY, content_type="text/plain")
    readable = POST_CONTENT_TYPES if request.method == "POST" else (URLENCODED,)
    if request.body and request.content_type not in readable:
        return HttpResponseUnsupportedMediaType(NOT_A_FORM, content_type="text/plain")
    # A charset other than UTF-8 never gets this far: races/charset.py refuses it for every endpoint.
    return None


class FormPostView(View):
    """A logged-in user's form, POSTed (or sent with the method a subclass allows, its handler
    calling ``handle_form``): what cannot be read or parsed is refused with a reason (4xx)
    before ``perform`` sees the parsed form.

    A subclass says how to parse the form (``parse``, raising ``BadForm``), how to carry it out
    (``perform``, calling one service) and, for a ``NotFound``, how to create what is missing
    (``create_missing``). A ``NotFound`` or ``Refused`` raised by any handler is answered here.
    """

    http_method_names = ["post"]
    # Said after a NotFound's reason in the 404: the command that creates what is missing.
    create_missing = ""

    def parse(self, *, query: QueryDict, body: QueryDict):
        """The form as the service takes it; ``BadForm`` says what is wrong with it."""
        raise NotImplementedError

    def perform(self, request, parsed) -> HttpResponse:
        raise NotImplementedError

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        except NotFound as missing:
            return self.not_found(missing)
        except Refused as refusal:
            return self.refused(refusal)

    def post(self, request):
        return self.handle_form(request)

    def handle_form(self, request) -> HttpResponse:
        refusal = refuse_unreadable_post(request)
        if refusal is not None:
            return refusal
        try:
            parsed = self.parse(query=request.GET, body=read_form(request))
        except BadForm as error:
            return HttpResponseBadRequest(f"{error}\n", content_type="text/plain")
        return self.perform(request, parsed)

    def not_found(self, missing: NotFound) -> HttpResponse:
        reason = f"{missing} {self.create_missing}" if self.create_missing else str(missing)
        return HttpResponseNotFound(f"{reason}\n", content_type="text/plain")

    def refused(self, refusal: Refused) -> HttpResponse:
        return HttpResponseConflict(f"{refusal}\n", content_type="text/plain")
