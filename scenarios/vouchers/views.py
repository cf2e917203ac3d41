from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseNotFound
from django.views import View

from bank.form_posts import BadForm, HttpResponseConflict, refuse_unreadable_post
from scenarios.vouchers.forms import parse_redemption_request
from scenarios.vouchers.redemptions import RedemptionRefused, VoucherNotFound, redeem


class RedeemView(View):
    """POST: use the voucher ``code`` once; 200 with which use it was, 409 when it is used up."""

    http_method_names = ["post"]

    def post(self, request):
        refusal = refuse_unreadable_post(request)
        if refusal is not None:
            return refusal
        try:
            parsed = parse_redemption_request(query=request.GET, body=request.POST)
        except BadForm as error:
            return HttpResponseBadRequest(f"{error}\n", content_type="text/plain")
        try:
            redemption = redeem(
                user=request.user,
                code=parsed.code,
                strategy=parsed.strategy,
                request_started_at=request.started_at,
            )
        except VoucherNotFound as error:
            return HttpResponseNotFound(
                f"{error} Create it with `manage.py seed_scenario voucher`.\n", content_type="text/plain"
            )
        except RedemptionRefused as refusal:
            return HttpResponseConflict(f"{refusal}\n", content_type="text/plain")
        return HttpResponse(
            f"Voucher {parsed.code} applied: use {redemption.use} of {redemption.limit}.\n",
            content_type="text/plain",
        )
