from django.http import HttpResponse

from races.views import FormPostView
from scenarios.vouchers.forms import parse_redemption_request
from scenarios.vouchers.redemptions import redeem


class RedeemView(FormPostView):
    """POST: use the voucher ``code`` once; 200 with which use it was, 409 when it is used up."""

    parse = staticmethod(parse_redemption_request)
    create_missing = "Create it with `manage.py seed_scenario voucher`."

    def perform(self, request, parsed):
        redemption = redeem(
            user=request.user,
            code=parsed.code,
            strategy=parsed.strategy,
            request_started_at=request.started_at,
        )
        return HttpResponse(
            f"Voucher {parsed.code} applied: use {redemption.use} of {redemption.limit}.\n",
            content_type="text/plain",
        )
