from django.http import HttpResponse

from races.views import FormPostView
from scenarios.transfers.forms import parse_transfer_request
from scenarios.transfers.movements import transfer


class SendView(FormPostView):
    """POST: move ``amount`` from the wallet ``source`` to the wallet ``destination``; 200 with the
    transfer, 409 when the source holds too little. The naive strategy's deadlock is left to
    Django's 500 on purpose: that is the bug."""

    parse = staticmethod(parse_transfer_request)
    create_missing = "Create the lab's wallets with `manage.py seed_scenario transfer`."

    def perform(self, request, parsed):
        receipt = transfer(
            source=parsed.source,
            destination=parsed.destination,
            amount=parsed.amount,
            strategy=parsed.strategy,
            request_started_at=request.started_at,
        )
        return HttpResponse(
            f"Sent {receipt.amount} from {receipt.source} to {receipt.destination}: "
            f"transfer {receipt.transfer_id}.\n",
            content_type="text/plain",
        )
