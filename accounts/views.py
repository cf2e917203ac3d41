from django.http import HttpResponse, HttpResponseNotFound

from accounts.forms import WithdrawalRequest
from accounts.selectors import account_for_user
from accounts.withdrawals import Withdrawal, withdraw
from races.refusals import NotFound
from races.views import FormPostView, not_logged_in

NO_ACCOUNT = "You have no account: create one with `manage.py seed_account`.\n"


class WithdrawView(FormPostView):
    """GET: the balance as plain text. POST: withdraw ``amount`` (default 1), answer the new balance."""

    http_method_names = ["get", "post"]
    form = WithdrawalRequest
    service = staticmethod(withdraw)

    def get(self, request):
        if not request.user.is_authenticated:
            return not_logged_in()
        account = account_for_user(user=request.user)
        if account is None:
            raise NotFound(f"User {request.user.pk} has no account.")
        return HttpResponse(account.current, content_type="text/plain")

    def answered(self, form, withdrawal: Withdrawal):
        # The new balance alone, as GET answers it: no sentence, no newline.
        return HttpResponse(withdrawal.balance_after, content_type="text/plain")

    def not_found(self, missing):
        # A user is told what to do about their own account, not its owner's id.
        return HttpResponseNotFound(NO_ACCOUNT, content_type="text/plain")
