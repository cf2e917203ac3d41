from django.http import (
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseNotFound,
)
from django.views import View

from accounts.forms import BadWithdrawalRequest, parse_withdrawal_request
from accounts.selectors import account_for_user
from accounts.withdrawals import AccountNotFound, WithdrawalRefused, withdraw

NOT_LOGGED_IN = "Log in first: POST your username and password to /auth/login/.\n"
NO_ACCOUNT = "You have no account: create one with `manage.py seed_account`.\n"
CHUNKED_BODY = "Send the form with a Content-Length header: a chunked body is not read.\n"
NOT_A_FORM = "Send amount as a form: Content-Type: application/x-www-form-urlencoded.\n"
FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class HttpResponseConflict(HttpResponse):
    status_code = 409


class HttpResponseLengthRequired(HttpResponse):
    status_code = 411


class HttpResponseUnsupportedMediaType(HttpResponse):
    status_code = 415


class WithdrawView(View):
    """GET: the balance as plain text. POST: withdraw ``amount`` (default 1), answer the new balance."""

    http_method_names = ["get", "post"]

    def get(self, request):
        if not request.user.is_authenticated:
            return HttpResponseForbidden(NOT_LOGGED_IN, content_type="text/plain")
        account = account_for_user(user=request.user)
        if account is None:
            return HttpResponseNotFound(NO_ACCOUNT, content_type="text/plain")
        return HttpResponse(account.current, content_type="text/plain")

    def post(self, request):
        if not request.user.is_authenticated:
            return HttpResponseForbidden(NOT_LOGGED_IN, content_type="text/plain")
        # Django reads neither a chunked body nor one that is not a form: either would leave
        # request.POST empty and withdraw the default amount instead of the one sent.
        if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            return HttpResponseLengthRequired(CHUNKED_BODY, content_type="text/plain")
        if request.body and request.content_type not in FORM_CONTENT_TYPES:
            return HttpResponseUnsupportedMediaType(NOT_A_FORM, content_type="text/plain")
        try:
            parsed = parse_withdrawal_request(query=request.GET, body=request.POST)
        except BadWithdrawalRequest as error:
            return HttpResponseBadRequest(f"{error}\n", content_type="text/plain")
        try:
            withdrawal = withdraw(
                user=request.user,
                amount=parsed.amount,
                strategy=parsed.strategy,
                request_started_at=request.started_at,
            )
        except AccountNotFound:
            return HttpResponseNotFound(NO_ACCOUNT, content_type="text/plain")
        except WithdrawalRefused as refusal:
            return HttpResponseConflict(f"{refusal}\n", content_type="text/plain")
        return HttpResponse(withdrawal.balance_after, content_type="text/plain")
