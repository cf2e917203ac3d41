from races.views import FormPostView
from scenarios.transfers.forms import TransferRequest
from scenarios.transfers.movements import transfer


class SendView(FormPostView):
    """POST: move ``amount`` from the wallet ``source`` to the wallet ``destination``; 200 with the
    transfer, 409 when the source holds too little. The naive strategy's deadlock is left to
    Django's 500 on purpose: that is the bug."""

    form = TransferRequest
    service = staticmethod(transfer)
    # transfer takes no user: the form names both wallets, whoever sends it.
    for_user = False
    answer = (
        "Sent {result.amount} from {result.source} to {result.destination}: transfer {result.transfer_id}."
    )
    create_missing = "Create the lab's wallets with `manage.py seed_scenario transfer`."
