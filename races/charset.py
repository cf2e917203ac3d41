"""The one charset the lab reads: UTF-8. A request whose Content-Type names another is refused
before Django builds it, whatever the endpoint.

Django decodes the query string and the form in the charset a Content-Type names, and fails
on any other than UTF-8 with a 500 where the client deserves a 400: it refuses a form in another
charset with BadRequest while the CSRF check reads it, and its 400 page runs that check again;
and a codec that encodes no text (rot13, base64) fails as Django builds the request, before any
middleware could answer.
"""

from collections.abc import Callable, Iterable

from django.utils.http import parse_header_parameters

# Django reads a form in this charset alone, written any case; aliases such as utf8 it refuses.
UTF8 = "utf-8"
NOT_UTF8 = (
    "The lab reads forms and query strings as UTF-8 only: send charset=utf-8 in the Content-Type, "
    "or no charset.\n"
)

WSGIApplication = Callable[[dict, Callable], Iterable[bytes]]


def names_another_charset(content_type: str) -> bool:
    """Whether a Content-Type header names a charset other than UTF-8 (read as Django reads it)."""
    if "charset" not in content_type.lower():  # the common case, without parsing
        return False
    _, parameters = parse_header_parameters(content_type)
    return "charset" in parameters and parameters["charset"].lower() != UTF8


def utf8_only(application: WSGIApplication) -> WSGIApplication:
    """``application``, with a 400 and the reason for a request whose Content-Type names a charset
    other than UTF-8."""

    def refuse_other_charsets(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if not names_another_charset(environ.get("CONTENT_TYPE", "")):
            return application(environ, start_response)
        reason = NOT_UTF8.encode()
        start_response(
            "400 Bad Request",
            [
                ("Content-Type", "text/plain"),
                ("Content-Length", str(len(reason))),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [reason]

    return refuse_other_charsets
