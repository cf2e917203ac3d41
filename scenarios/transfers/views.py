from django.http import HttpResponse, HttpResponseNotFound

from bank.form_posts import FormPostView, HttpResponseConflict
from scenarios.transfers.forms import parse_transfer_request
from scenarios.transfers.movements import TransferRefused, WalletNotFound, transfer


class SendView(FormPostView):
    """POST: move ``amount`` from the wallet ``source`` to the wallet ``destination``; 200 with the
    transfer, 409 when the source holds too little. The naive strategy's deadlock is left to
    Django's 500 on purpose: that is the bug."""

    def parse(self, *, query, body):
        return parse_transfer_request(query=query, body=body)

    def perform(self, request, parsed):
        try:
            receipt = transfer(
                source=parsed.source,
                destination=parsed.destination,
                amount=parsed.amount,
                strategy=parsed.strategy,
                request_started_at=request.started_at,
            )
        except WalletNotFound as error:
            return HttpResponseNotFound(
                f"{error} Create the lab's wallets with `manage.py seed_scenario transfer`.\n",
                content_type="text/plain",
            )
        except TransferRefused as refusal:
            return HttpResponseConflict(f"{refusal}\n", content_type="text/plain")
        return HttpResponse(
            f"Sent {receipt.amount} from {receipt.source} to {receipt.destination}: "
            f"transfer {receipt.transfer_id}.\n",
            content_type="text/plain",
        )
