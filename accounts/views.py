from django.http import (
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseNotFound,
)
from django.views import View

from accounts.forms import BadWithdrawalRequest, parse_withdrawal_request
from accounts.selectors import account_for_user
from accounts.withdrawals import WithdrawalRefused, withdraw

NOT_LOGGED_IN = "Log in first: POST your username and password to /auth/login/.\n"
NO_ACCOUNT = "You have no account: create one with `manage.py seed_account`.\n"


class HttpResponseConflict(HttpResponse):
    status_code = 409


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
        try:
            parsed = parse_withdrawal_request(query=request.GET, body=request.POST)
        except BadWithdrawalRequest as error:
            return HttpResponseBadRequest(f"{error}\n", content_type="text/plain")
        account = account_for_user(user=request.user)
        if account is None:
            return HttpResponseNotFound(NO_ACCOUNT, content_type="text/plain")
        try:
            withdrawal = withdraw(
                account=account,
                amount=parsed.amount,
                strategy=parsed.strategy,
                request_started_at=request.started_at,
            )
        except WithdrawalRefused as refusal:
            return HttpResponseConflict(f"{refusal}\n", content_type="text/plain")
        return HttpResponse(withdrawal.balance_after, content_type="text/plain")
