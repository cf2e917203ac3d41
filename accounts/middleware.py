from django.http import HttpResponseBadRequest, UnreadablePostError
from django.utils import timezone

BODY_CUT_SHORT = (
    "The request body was cut short: fewer bytes arrived than its Content-Length announced, "
    "so nothing was done. Send the whole body.\n"
)


class RequestStartMiddleware:
    """Stamp each request with the moment the server had all of it and began handling it.

    The ledger records this time: the INSERT time is serialised by the database and says
    nothing about when concurrent requests arrived. The body is read first because Gunicorn
    starts the application as soon as the headers are in: a client that holds back a body's
    last byte (the burst driver does, to release many requests at once) would otherwise be
    stamped when its headers arrived, long before its request was whole.

    Reading it first is also where a body cut short is caught, whichever way its client went
    away: an abort (RST) makes the read fail, but a close (FIN), or a client killed mid-body
    (whose kernel closes with a FIN), only ends it early, and Gunicorn hands Django the bytes
    that came. "amount=70&" cut after 8 bytes parses as a valid "amount=7": only the length
    tells it is not the request the client meant to send.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            body = request.body
        except UnreadablePostError:
            return _cut_short()
        if len(body) < _declared_length(request):
            return _cut_short()
        request.started_at = timezone.now()
        return self.get_response(request)


def _declared_length(request) -> int:
    # Read as Django reads it (a missing or unparsable header is no body); Gunicorn has already
    # refused a Content-Length that is not a number with its own 400.
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _cut_short() -> HttpResponseBadRequest:
    return HttpResponseBadRequest(BODY_CUT_SHORT, content_type="text/plain")
