from django.http import HttpResponse, HttpResponseNotFound

from bank.form_posts import FormPostView, HttpResponseConflict
from scenarios.vouchers.forms import parse_redemption_request
from scenarios.vouchers.redemptions import RedemptionRefused, VoucherNotFound, redeem


class RedeemView(FormPostView):
    """POST: use the voucher ``code`` once; 200 with which use it was, 409 when it is used up."""

    def parse(self, *, query, body):
        return parse_redemption_request(query=query, body=body)

    def perform(self, request, parsed):
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
