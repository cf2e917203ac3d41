from races.views import FormPostView
from scenarios.vouchers.forms import RedemptionRequest
from scenarios.vouchers.redemptions import redeem


class RedeemView(FormPostView):
    """POST: use the voucher ``code`` once; 200 with which use it was, 409 when it is used up."""

    form = RedemptionRequest
    service = staticmethod(redeem)
    answer = "Voucher {form.code} applied: use {result.use} of {result.limit}."
    create_missing = "Create it with `manage.py seed_scenario voucher`."
