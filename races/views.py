"""The view every race's endpoint is: a logged-in user's form, refused with a plain-text reason
(4xx) when it cannot be read or parsed, and the service's ``NotFound`` and ``Refused`` answered
404 and 409 with theirs, in one place for the eight endpoints."""

from collections.abc import Callable

from django.http import (
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseNotFound,
)
from django.views import View

from races.forms import BadForm, ParsedForm, read_form
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
    """A logged-in user's form, POSTed (or PATCHed, where ``http_method_names`` says so): what
    cannot be read or parsed is refused with a reason (4xx) before the service sees the form.

    A subclass declares the endpoint: the form it reads (``form``, a races.forms.ParsedForm), the
    service that carries it out (``service``, called with the form's fields, ``request_started_at``
    and, unless ``for_user`` is False, the logged-in ``user``), the sentence of its 200
    (``answer``, a ``str.format`` template of ``form`` and the service's ``result``, or
    ``answered`` overridden) and, for a ``NotFound``, how to create what is missing
    (``create_missing``). A ``NotFound`` or ``Refused`` raised by any handler is answered here.
    """

    http_method_names = ["post"]
    form: type[ParsedForm]
    service: Callable[..., object]
    # False for a service that takes no user: the form names what it acts on (a profile, two wallets).
    for_user = True
    answer = ""
    # Said after a NotFound's reason in the 404: the command that creates what is missing.
    create_missing = ""

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        except NotFound as missing:
            return self.not_found(missing)
        except Refused as refusal:
            return self.refused(refusal)

    def post(self, request) -> HttpResponse:
        refusal = refuse_unreadable_post(request)
        if refusal is not None:
            return refusal
        try:
            form = self.form.parse(query=request.GET, body=read_form(request))
        except BadForm as error:
            return HttpResponseBadRequest(f"{error}\n", content_type="text/plain")
        return self.perform(request, form)

    # A PATCHed form is read as a POSTed one (read_form); a view that takes it says so in
    # http_method_names.
    patch = post

    def perform(self, request, form: ParsedForm) -> HttpResponse:
        return self.answered(form, self.carry_out(request, form))

    def carry_out(self, request, form: ParsedForm) -> object:
        """What the service returns for ``form``."""
        user = {"user": request.user} if self.for_user else {}
        return self.service(**user, **form.arguments(), request_started_at=request.started_at)

    def answered(self, form: ParsedForm, result: object) -> HttpResponse:
        return text(self.answer.format(form=form, result=result))

    def not_found(self, missing: NotFound) -> HttpResponse:
        reason = f"{missing} {self.create_missing}" if self.create_missing else str(missing)
        return HttpResponseNotFound(f"{reason}\n", content_type="text/plain")

    def refused(self, refusal: Refused) -> HttpResponse:
        return HttpResponseConflict(f"{refusal}\n", content_type="text/plain")


def text(sentence: str) -> HttpResponse:
    """A 200 that says ``sentence``, a line of plain text."""
    return HttpResponse(f"{sentence}\n", content_type="text/plain")
