from django.http import HttpResponse
from django.test import RequestFactory
from django.utils import timezone

from accounts.middleware import RequestStartMiddleware


def test_stamps_the_request_before_the_view_runs():
    seen = {}

    def view(request):
        seen["started_at"] = request.started_at
        seen["view_ran_at"] = timezone.now()
        return HttpResponse("ok")

    before = timezone.now()
    response = RequestStartMiddleware(view)(RequestFactory().get("/"))

    assert response.content == b"ok"
    assert timezone.is_aware(seen["started_at"])
    assert before <= seen["started_at"] <= seen["view_ran_at"]
