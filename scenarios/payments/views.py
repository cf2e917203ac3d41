from django.http import HttpResponse, HttpResponseNotFound

from bank.form_posts import FormPostView, HttpResponseConflict
from scenarios.payments.charges import InvoiceNotFound, KeyReused, PaymentRefused, pay
from scenarios.payments.forms import parse_payment_request

# Stripe's name for it: the answer is the one first given for this key, and nothing was charged now.
REPLAYED_HEADER = "Idempotent-Replayed"


class HttpResponseUnprocessableContent(HttpResponse):
    # The IETF Idempotency-Key draft's answer to a key sent again with a different request.
    status_code = 422


class PayView(FormPostView):
    """POST: pay the invoice ``invoice`` from a form carrying the idempotency key ``key``; 200
    with the payment, 409 when the invoice is already paid, and for a form sent again under the
    idempotency_key strategy, its first answer again with ``Idempotent-Replayed: true``."""

    def parse(self, *, query, body):
        return parse_payment_request(query=query, body=body)

    def perform(self, request, parsed):
        try:
            receipt = pay(
                user=request.user,
                invoice=parsed.invoice,
                key=parsed.key,
                strategy=parsed.strategy,
                request_started_at=request.started_at,
            )
        except InvoiceNotFound as error:
            return HttpResponseNotFound(
                f"{error} Create it with `manage.py seed_scenario payment`.\n", content_type="text/plain"
            )
        except PaymentRefused as refused:
            response = HttpResponseConflict(f"{refused}\n", content_type="text/plain")
            replayed = refused.replayed
        except KeyReused as reused:
            return HttpResponseUnprocessableContent(f"{reused}\n", content_type="text/plain")
        else:
            paid = (
                f"Invoice {receipt.invoice} paid: {receipt.amount} charged as payment {receipt.payment_id}.\n"
            )
            response = HttpResponse(paid, content_type="text/plain")
            replayed = receipt.replayed
        if replayed:
            response[REPLAYED_HEADER] = "true"
        return response
