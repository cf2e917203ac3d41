"""Move money between two wallets: transfers that lock their rows in request order, and two ways
to make them correct.

The naive strategy is the shape of django-oscar's ``place_order`` before #4594: in one
transaction it allocated each basket line's stock record, a row lock each, in the order the
basket listed them, so two orders naming the same rows in opposite orders each held one row and
waited for the other's. A transfer debits its source, then credits its destination: A->B and
B->A at once each hold their source and wait for the other's, until the database aborts one.
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F

from races.refusals import NotFound, Refused
from races.requested import Requested
from races.serializable import MAX_ATTEMPTS, retried
from scenarios.transfers.models import MAX_TRANSFER_AMOUNT, Transfer, Wallet


class Strategy(enum.StrEnum):
    NAIVE = "naive"
    ORDERED = "ordered"
    RETRY = "retry"


SAFE_STRATEGIES = tuple(strategy for strategy in Strategy if strategy is not Strategy.NAIVE)


@dataclass(frozen=True, kw_only=True)
class Receipt:
    transfer_id: int
    source: str
    destination: str
    amount: int


def transfer(
    *, source: str, destination: str, amount: int, strategy: Strategy, request_started_at: datetime
) -> Receipt:
    """Move ``amount`` from the wallet named ``source`` to the one named ``destination`` with
    ``strategy``: both balances and one Transfer row, together or not at all. ``Refused`` when the
    source holds less than ``amount``; ``NotFound`` for an unknown name."""
    if not 1 <= amount <= MAX_TRANSFER_AMOUNT:
        raise ValueError(f"amount must be from 1 to {MAX_TRANSFER_AMOUNT}, not {amount}")
    if source == destination:
        raise ValueError(f"a transfer moves money between two wallets, not from {source!r} to itself")
    ids = dict(Wallet.objects.filter(name__in=[source, destination]).values_list("name", "pk"))
    for name in (source, destination):
        if name not in ids:
            raise NotFound(f"There is no wallet {name!r}.")
    order = _Order(
        source=source,
        destination=destination,
        source_id=ids[source],
        destination_id=ids[destination],
        amount=amount,
        strategy=strategy,
        request_started_at=request_started_at,
    )
    return _IMPLEMENTATIONS[strategy](order)


@dataclass(frozen=True, kw_only=True)
class _Order(Requested):
    source: str
    destination: str
    source_id: int
    destination_id: int
    amount: int

    def move(self) -> Receipt:
        """Debit the source if it holds enough, credit the destination, record the transfer.
        Each UPDATE locks its row until COMMIT: unless they are locked already, the two wallets
        are locked in this order, the request's."""
        debited = Wallet.objects.filter(pk=self.source_id, balance__gte=self.amount).update(
            balance=F("balance") - self.amount
        )
        if not debited:
            raise self.short()
        Wallet.objects.filter(pk=self.destination_id).update(balance=F("balance") + self.amount)
        row = Transfer.objects.create(
            source_id=self.source_id, destination_id=self.destination_id, amount=self.amount, **self.recorded
        )
        return Receipt(
            transfer_id=row.pk, source=self.source, destination=self.destination, amount=self.amount
        )

    def short(self) -> Refused | NotFound:
        balance = Wallet.objects.filter(pk=self.source_id).values_list("balance", flat=True).first()
        if balance is None:  # deleted since it was looked up
            return NotFound(f"There is no wallet {self.source!r}.")
        return Refused(
            f"Wallet {self.source} holds {balance}, less than the {self.amount} to send; nothing was moved."
        )


def _naive(order: _Order) -> Receipt:
    # Rows locked in request order: transfers around a cycle (A->B and B->A) each hold their
    # source and wait for the next one's. PostgreSQL (40P01, after deadlock_timeout) and MariaDB
    # (1213, at once) abort one of them, and nothing here expects it: the server answers 500.
    # That is the bug, kept as django-oscar shipped it.
    with transaction.atomic():
        return order.move()


def _ordered(order: _Order) -> Receipt:
    # Both wallets locked before either is written, lowest primary key first, as every transfer
    # does: of transfers that share a wallet, the first to lock the lower one gets both and the
    # others queue behind it, so no cycle of waits can form.
    with transaction.atomic():
        wallets = Wallet.objects.select_for_update().filter(pk__in=[order.source_id, order.destination_id])
        list(wallets.order_by("pk").values_list("pk", flat=True))
        return order.move()


def _retry(order: _Order) -> Receipt:
    # The naive order, with the deadlock's victim rolled back whole and run again. Correct, but
    # every cycle still costs a deadlock, and on PostgreSQL the second (deadlock_timeout) it
    # waits before the database looks for one. durable=True: no outer transaction is retried
    # with us half done.
    def attempt() -> Receipt:
        with transaction.atomic(durable=True):
            return order.move()

    return retried(
        attempt,
        what=f"the transfer from {order.source} to {order.destination}",
        gave_up=f"Conflict: the database aborted the transfer from {order.source} to {order.destination} "
        f"{MAX_ATTEMPTS} times in a row to break a deadlock; nothing was moved, try again.",
    )


_IMPLEMENTATIONS: dict[Strategy, Callable[[_Order], Receipt]] = {
    Strategy.NAIVE: _naive,
    Strategy.ORDERED: _ordered,
    Strategy.RETRY: _retry,
}
