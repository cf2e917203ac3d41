from scenarios.definition import Scenario
from scenarios.transfers import provisioning
from scenarios.transfers.audit import audit_wallets
from scenarios.transfers.models import Wallet
from scenarios.transfers.movements import Strategy

LAB_AMOUNT = 1


def ring(concurrency: int) -> tuple[dict[str, str], ...]:
    """A ring of transfers, one per request up to the lab's wallets: form i pays wallet i + 1 (the
    last pays the first), so K held together each hold one wallet and wait for the next one's."""
    size = min(max(concurrency, 2), provisioning.RING_SIZE)
    wallets = provisioning.LAB_WALLETS[:size]
    return tuple(
        {"source": wallets[index], "destination": wallets[(index + 1) % size], "amount": str(LAB_AMOUNT)}
        for index in range(size)
    )


TRANSFER = Scenario(
    name="transfer",
    title="transfers that lock in request order, deadlock",
    bug="https://github.com/django-oscar/django-oscar/pull/4594",
    path="/scenarios/transfer/send/",
    forms_at=ring,
    # Above the ring's size forms repeat: a second transfer from one wallet waits for the first's
    # row lock before the park point, and the deadlocks that follow depend on timing.
    race_parties_max=provisioning.RING_SIZE,
    # SQLite's transactions take the write lock at BEGIN: transfers run one at a time there, and
    # one at a time nothing can deadlock.
    reproduces_on=("postgresql", "mysql"),
    strategies=tuple(Strategy),
    # The first write of the wallets, the debit: a write is keyed by its table alone, so the K
    # requests of a ring meet there, each holding its source's row lock.
    park_point=f"{Wallet._meta.db_table}:write",
    # Released together, each asks for the next one's wallet: one cycle through all K (at most
    # the ring's size, race_parties_max), and the
    # database aborts one of them, a 500. Its rollback leaves the balances explained.
    naive_violations=lambda parties, audit: 1 if parties >= 2 else 0,
    recorded="every transfer, and what the transfers did to every wallet's balance",
    seed=provisioning.seed_wallets,
    is_seeded=provisioning.lab_wallets_exist,
    reset=provisioning.reset_wallets,
    audit=lambda: audit_wallets(names=provisioning.LAB_WALLETS),
)
