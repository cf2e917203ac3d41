from django.utils import timezone


class RequestStartMiddleware:
    """Stamp each request with the moment the server began handling it.

    The ledger records this time: the INSERT time is serialised by the database and says
    nothing about when concurrent requests arrived.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.started_at = timezone.now()
        return self.get_response(request)
