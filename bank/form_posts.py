"""What every lab endpoint that takes a form answers before it looks at the form: plain-text
4xx responses with a reason, for a client that is not logged in or sends what Django cannot read."""

import re
from enum import StrEnum
from typing import TypeVar

from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseForbidden, QueryDict
from django.views import View

NOT_LOGGED_IN = "Log in first: POST your username and password to /auth/login/.\n"
CHUNKED_BODY = "Send the form with a Content-Length header: a chunked body is not read.\n"
NOT_A_FORM = "Send the fields as a form: Content-Type: application/x-www-form-urlencoded.\n"
NOT_UTF8 = (
    "The lab reads forms and query strings as UTF-8 only: send charset=utf-8 in the Content-Type, "
    "or no charset.\n"
)
NOT_UTF8_TEXT = (
    "The form holds bytes that are not UTF-8 (raw, %-escaped or base64-encoded): send every field "
    "as UTF-8 text."
)
STRATEGY_IN_FORM = "Send strategy in the query string (?strategy=NAME), not in the form."
QUERY_TAKES_STRATEGY_ONLY = "The query string takes strategy alone (?strategy=NAME); {name!r} is not read."
# What Django's parsers leave in place of bytes that are not UTF-8.
REPLACEMENT_CHARACTER = "\ufffd"
URLENCODED = "application/x-www-form-urlencoded"
# Django parses multipart bodies for POST only; any other method's body is read as urlencoded.
POST_CONTENT_TYPES = (URLENCODED, "multipart/form-data")


class HttpResponseConflict(HttpResponse):
    status_code = 409


class HttpResponseLengthRequired(HttpResponse):
    status_code = 411


class HttpResponseUnsupportedMediaType(HttpResponse):
    status_code = 415


def refuse_unreadable_post(request) -> HttpResponse | None:
    """The answer to a form (POSTed, or PATCHed) that must not reach the form parser, or None
    when it may."""
    if not request.user.is_authenticated:
        return HttpResponseForbidden(NOT_LOGGED_IN, content_type="text/plain")
    # Neither a chunked body nor one that is not a form is read: either would leave the form
    # empty, and the endpoint would act on its defaults instead of what was sent.
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        return HttpResponseLengthRequired(CHUNKED_BODY, content_type="text/plain")
    readable = POST_CONTENT_TYPES if request.method == "POST" else (URLENCODED,)
    if request.body and request.content_type not in readable:
        return HttpResponseUnsupportedMediaType(NOT_A_FORM, content_type="text/plain")
    # A charset other than UTF-8 never gets this far: bank/charset.py refuses it for every endpoint.
    return None


class BadForm(ValueError):
    """A field a client sent cannot be used; the message says how to send it."""


def single_field(values: QueryDict, name: str, *, default: str) -> str:
    """The one value of ``name`` (``default`` when absent): a field sent twice is refused, not
    silently narrowed to its last value."""
    given = values.getlist(name)
    if len(given) > 1:
        raise BadForm(f"{name} was given {len(given)} times; send it once.")
    return given[0] if given else default


def read_form(request) -> QueryDict:
    """The form of a request ``refuse_unreadable_post`` let through, POSTed or PATCHed.

    BadForm when the form is not UTF-8 text: Django reads it with the bytes that are not UTF-8
    replaced (U+FFFD), or a raw body that is not UTF-8 as Latin-1, and would store what the client
    never wrote. BadForm too for a strategy anywhere but the query string, and for anything else in
    the query string (``strategy[]``, ``amount``): either would go unread, and the endpoint would
    run its default (the naive strategy, the default amount) instead of what was asked.
    """
    # Django parses a form body for POST only; any other method's is read here, as UTF-8.
    body = request.POST if request.method == "POST" else QueryDict(request.body, encoding="utf-8")
    try:
        request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadForm(NOT_UTF8_TEXT) from None
    if any(REPLACEMENT_CHARACTER in text for name, values in body.lists() for text in (name, *values)):
        raise BadForm(NOT_UTF8_TEXT)
    stray = sorted(name for name in request.GET if name != "strategy")
    if stray:
        raise BadForm(QUERY_TAKES_STRATEGY_ONLY.format(name=stray[0]))
    if "strategy" in body:
        raise BadForm(STRATEGY_IN_FORM)
    return body


# What the scenarios name things with: voucher codes, activity names, invoice numbers, keys.
TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def token_field(body: QueryDict, name: str, *, max_length: int, error: str) -> str:
    """A required field of 1 to ``max_length`` letters, digits, '-' or '_'; ``error`` otherwise."""
    value = single_field(body, name, default="").strip()
    if len(value) > max_length or not TOKEN.fullmatch(value):
        raise BadForm(error)
    return value


S = TypeVar("S", bound=StrEnum)


def strategy_error(strategies: type[StrEnum]) -> str:
    return "strategy must be one of: " + ", ".join(strategies) + "."


def chosen_strategy(query: QueryDict, strategies: type[S]) -> S:
    """``?strategy=``: one of ``strategies``, or the first of them (the naive one) when absent."""
    name = single_field(query, "strategy", default=next(iter(strategies)).value)
    try:
        return strategies(name)
    except ValueError:
        raise BadForm(strategy_error(strategies)) from None


class FormPostView(View):
    """A logged-in user's form, POSTed (or sent with the method a subclass allows, its handler
    calling ``handle_form``): what cannot be read or parsed is refused with a reason (4xx)
    before ``perform`` sees the parsed form."""

    http_method_names = ["post"]

    def parse(self, *, query: QueryDict, body: QueryDict):
        """The form as the service takes it; ``BadForm`` says what is wrong with it."""
        raise NotImplementedError

    def perform(self, request, parsed) -> HttpResponse:
        raise NotImplementedError

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
