"""Put the transfer scenario's data into a known state: its ring of wallets, each holding its
opening balance, with no transfer recorded."""

from django.db import transaction
from django.db.models import F, Q

from scenarios.transfers.models import Transfer, Wallet

# As many wallets as the largest ring of transfers the lab sends: each request of a ring pays
# the next wallet, so K requests deadlock through K wallets.
RING_SIZE = 5
LAB_WALLETS = tuple(f"lab-wallet-{index}" for index in range(RING_SIZE))
OPENING_BALANCE = 1_000_000


@transaction.atomic
def seed_wallets() -> str:
    """Create the lab's wallets or put them back to their opening balance, and clear their
    transfers; says what it did."""
    created = 0
    for name in LAB_WALLETS:
        _, new = Wallet.objects.update_or_create(
            name=name, defaults={"balance": OPENING_BALANCE, "opening_balance": OPENING_BALANCE}
        )
        created += new
    touching = Q(source__name__in=LAB_WALLETS) | Q(destination__name__in=LAB_WALLETS)
    cleared, _ = Transfer.objects.filter(touching).delete()
    return (
        f"Seeded wallets {LAB_WALLETS[0]} to {LAB_WALLETS[-1]} ({created} new), each holding "
        f"{OPENING_BALANCE}; {cleared} transfer(s) cleared."
    )


def lab_wallets_exist() -> bool:
    return Wallet.objects.filter(name__in=LAB_WALLETS).count() == RING_SIZE


@transaction.atomic
def reset_wallets() -> str:
    """Every wallet back to its opening balance, every transfer deleted; says what it did."""
    cleared, _ = Transfer.objects.all().delete()
    count = Wallet.objects.update(balance=F("opening_balance"))
    return f"Reset {count} wallet(s) to their opening balance: {cleared} transfer(s) cleared."
