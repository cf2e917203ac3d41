from django.http import HttpResponseBadRequest, UnreadablePostError
from django.utils import timezone


class RequestStartMiddleware:
    """Stamp each request with the moment the server had all of it and began handling it.

    The ledger records this time: the INSERT time is serialised by the database and says
    nothing about when concurrent requests arrived. The body is read first because Gunicorn
    starts the application as soon as the headers are in: a client that holds back a body's
    last byte (the burst driver does, to release many requests at once) would otherwise be
    stamped when its headers arrived, long before its request was whole.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            request.body  # noqa: B018 (read for its side effect: wait for the whole request)
        except UnreadablePostError:
            # The client went away halfway through its request: nothing was done for it.
            return HttpResponseBadRequest("The request body was cut short.\n", content_type="text/plain")
        request.started_at = timezone.now()
        return self.get_response(request)
