from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseForbidden, HttpResponseNotFound
from django.views import View

from accounts.forms import parse_withdrawal_request
from accounts.selectors import account_for_user
from accounts.withdrawals import AccountNotFound, WithdrawalRefused, withdraw
from bank.form_posts import NOT_LOGGED_IN, BadForm, HttpResponseConflict, read_form, refuse_unreadable_post

NO_ACCOUNT = "You have no account: create one with `manage.py seed_account`.\n"


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
        refusal = refuse_unreadable_post(request)
        if refusal is not None:
            return refusal
        try:
            parsed = parse_withdrawal_request(query=request.GET, body=read_form(request))
        except BadForm as error:
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
