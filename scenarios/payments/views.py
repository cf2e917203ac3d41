from django.http import HttpResponse

from races.views import FormPostView
from scenarios.payments.charges import KeyReused, PaymentRefused, pay
from scenarios.payments.forms import PaymentRequest

# Stripe's name for it: the answer is the one first given for this key, and nothing was charged now.
REPLAYED_HEADER = "Idempotent-Replayed"


class HttpResponseUnprocessableContent(HttpResponse):
    # The IETF Idempotency-Key draft's answer to a key sent again with a different request.
    status_code = 422


class PayView(FormPostView):
    """POST: pay the invoice ``invoice`` from a form carrying the idempotency key ``key``; 200
    with the payment, 409 when the invoice is already paid, and for a form sent again under the
    idempotency_key strategy, its first answer again with ``Idempotent-Replayed: true``."""

    form = PaymentRequest
    service = staticmethod(pay)
    answer = "Invoice {result.invoice} paid: {result.amount} charged as payment {result.payment_id}."
    create_missing = "Create it with `manage.py seed_scenario payment`."

    def perform(self, request, form):
        try:
            receipt = self.carry_out(request, form)
        except KeyReused as reused:
            return HttpResponseUnprocessableContent(f"{reused}\n", content_type="text/plain")
        except PaymentRefused as refusal:
            # Caught here, not by dispatch: a refusal the key kept may be this form's first answer.
            return _replayed(self.refused(refusal), replayed=refusal.replayed)
        return _replayed(self.answered(form, receipt), replayed=receipt.replayed)


def _replayed(response: HttpResponse, *, replayed: bool) -> HttpResponse:
    if replayed:
        response[REPLAYED_HEADER] = "true"
    return response
