import io

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils import timezone

from accounts.middleware import BODY_CUT_SHORT, RequestStartMiddleware

pytestmark = pytest.mark.database_independent


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


def cut_short_post(*, sent: bytes, content_length: int):
    """A POST whose client announced ``content_length`` bytes, then closed after ``sent``.

    A plain stream that ends early is what Gunicorn gives Django when the client closes (FIN)
    or is killed mid-body: reads return what came, then b"".
    """
    return RequestFactory().post(
        "/accounts/withdraw/",
        data=sent,
        content_type="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(content_length),
        **{"wsgi.input": io.BytesIO(sent)},
    )


class BrokenStream(io.RawIOBase):
    """The stream of a client that aborted (RST): reading fails."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        raise ConnectionResetError(104, "Connection reset by peer")


def never_called(request):
    raise AssertionError("the view ran for a request that was cut short")


@pytest.mark.parametrize(
    ("sent", "content_length"),
    [(b"amount=5", 9), (b"amount=2", 100), (b"amount=7", len(b"amount=70&")), (b"", 1)],
    ids=["one-byte-short", "far-short", "killed-mid-body", "nothing-sent"],
)
def test_a_body_shorter_than_its_content_length_is_refused(sent, content_length):
    response = RequestStartMiddleware(never_called)(cut_short_post(sent=sent, content_length=content_length))

    assert (response.status_code, response.content.decode()) == (400, BODY_CUT_SHORT)


def test_an_aborted_body_is_refused():
    request = RequestFactory().post(
        "/accounts/withdraw/",
        data=b"amount=5",
        content_type="application/x-www-form-urlencoded",
        **{"wsgi.input": BrokenStream()},
    )

    response = RequestStartMiddleware(never_called)(request)

    assert (response.status_code, response.content.decode()) == (400, BODY_CUT_SHORT)


def test_a_whole_body_reaches_the_view():
    seen = {}

    def view(request):
        seen["amount"] = request.POST["amount"]
        return HttpResponse("ok")

    request = cut_short_post(sent=b"amount=70&", content_length=len(b"amount=70&"))

    assert RequestStartMiddleware(view)(request).content == b"ok"
    assert seen == {"amount": "70"}
