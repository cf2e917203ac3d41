"""Pay an invoice from a form that may arrive twice: the double submit, and two ways to make it
correct.

The naive strategy is the shape of Magento 2 #10767 (Braintree's "Pay" button, clicked again
before the first click's answer came): the request checks that there is still something to pay,
then charges it and marks it paid, with nothing between the check and the charge. A second
submit that arrives after the first has finished is refused; one that arrives while the first is
in flight passes the same check and charges again.
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from races.refusals import Refused, found
from races.requested import Requested
from races.serializable import MAX_ATTEMPTS, retried
from scenarios.payments.models import IdempotencyKey, Invoice, Payment


class Strategy(enum.StrEnum):
    NAIVE = "naive"
    IDEMPOTENCY_KEY = "idempotency_key"
    LOCKING = "locking"


SAFE_STRATEGIES = tuple(strategy for strategy in Strategy if strategy is not Strategy.NAIVE)


class PaymentRefused(Refused):
    """Nothing was charged; the message says why (the idempotency_key strategy keeps it with the
    key). ``replayed``: the answer first given for the form's key, given again."""

    def __init__(self, reason: str, *, replayed: bool = False) -> None:
        super().__init__(reason)
        self.replayed = replayed


class KeyReused(Exception):
    """The idempotency key was first sent for another invoice; nothing changed."""


@dataclass(frozen=True, kw_only=True)
class Receipt:
    invoice: str
    payment_id: int
    amount: int
    # The answer first given for this key, given again: this request charged nothing.
    replayed: bool = False


def pay(
    *, user: AbstractBaseUser, invoice: str, key: str, strategy: Strategy, request_started_at: datetime
) -> Receipt:
    """Pay the invoice numbered ``invoice`` for ``user`` with ``strategy``, from a form that
    carried the idempotency key ``key``: one Payment row, or ``PaymentRefused`` when the invoice
    is paid already (``NotFound`` for an unknown number, ``KeyReused`` for a key first sent for
    another invoice)."""
    order = _Order(
        user=user, number=invoice, key=key, strategy=strategy, request_started_at=request_started_at
    )
    return _IMPLEMENTATIONS[strategy](order)


@dataclass(frozen=True, kw_only=True)
class _Order(Requested):
    user: AbstractBaseUser
    number: str
    key: str

    def invoice(self, *, for_update: bool = False) -> Invoice:
        return found(
            Invoice,
            number=self.number,
            for_update=for_update,
            missing=f"There is no invoice {self.number!r}.",
        )

    @property
    def already_paid(self) -> str:
        return f"Invoice {self.number} is already paid; nothing was charged."

    def charge(self, invoice: Invoice) -> Payment:
        return Payment.objects.create(
            invoice=invoice,
            user_id=self.user.pk,
            idempotency_key=self.key,
            amount=invoice.amount,
            **self.recorded,
        )

    def settle(self, invoice: Invoice) -> Receipt:
        """Charge the invoice and mark it paid, as a checkout does once it has decided to."""
        payment = self.charge(invoice)
        invoice.paid_at = timezone.now()
        invoice.save(update_fields=["paid_at"])
        return self.receipt(payment)

    def receipt(self, payment: Payment, *, replayed: bool = False) -> Receipt:
        return Receipt(invoice=self.number, payment_id=payment.pk, amount=payment.amount, replayed=replayed)

    def answer(self, taken: IdempotencyKey, *, replayed: bool = False) -> Receipt:
        """The answer a key holds: the receipt of its payment, or its refusal raised."""
        if taken.payment is None:
            raise PaymentRefused(taken.refusal, replayed=replayed)
        return self.receipt(taken.payment, replayed=replayed)


def _naive(order: _Order) -> Receipt:
    # Check, then act: the paid check and the charge are separate statements, outside any
    # transaction, and the key the form carried is recorded but never taken.
    invoice = order.invoice()
    if invoice.paid_at is not None:
        raise PaymentRefused(order.already_paid)
    return order.settle(invoice)


def _idempotency_key(order: _Order) -> Receipt:
    # An unknown number is refused before a key is taken.
    invoice = order.invoice()
    try:
        return order.answer(_take_key(order, invoice))
    except IntegrityError:
        # Taken by a request that committed first: this is a copy of that form.
        first = (
            IdempotencyKey.objects.select_related("payment")
            .filter(user_id=order.user.pk, key=order.key)
            .first()
        )
        if first is None:
            raise
    if first.invoice_number != order.number:
        raise KeyReused(
            f"Idempotency key {order.key} was sent for invoice {first.invoice_number}, not "
            f"{order.number}: send a new key for a new payment. Nothing was charged."
        )
    return order.answer(first, replayed=True)


def _take_key(order: _Order, invoice: Invoice) -> IdempotencyKey:
    """The key, taken, with the answer to its first request: IntegrityError if it was taken."""
    # MariaDB: copies of one form inserting its key at once can deadlock in InnoDB's duplicate
    # check (over a deleted copy of the key, which a reset leaves until purge runs), and InnoDB
    # rolls one back. Retried, it finds the key taken and replays it.
    return retried(
        lambda: _take_key_once(order, invoice),
        what=f"idempotency key {order.key}",
        gave_up=f"Conflict: the database refused to take idempotency key {order.key} {MAX_ATTEMPTS} "
        "times in a row; nothing was charged, send the form again.",
    )


def _take_key_once(order: _Order, invoice: Invoice) -> IdempotencyKey:
    # Durable: the key and its answer are committed before the client hears the answer, never
    # left to an outer transaction that could still roll them back, and a retry starts afresh.
    with transaction.atomic(durable=True):
        # Take the key first: a concurrent request with the same key waits here, on the unique
        # index, until this transaction has committed the key with its answer, then replays it.
        taken = IdempotencyKey.objects.create(
            user_id=order.user.pk, key=order.key, invoice_number=order.number
        )
        # Another key (another form, another user) may be paying the invoice at the same time:
        # mark it paid only if it is unpaid, in one UPDATE, so that one of them wins.
        if Invoice.objects.filter(pk=invoice.pk, paid_at__isnull=True).update(paid_at=timezone.now()):
            taken.payment = order.charge(invoice)
        else:
            # Kept with the key, as Stripe keeps a refused request's answer: the same form sent
            # again is refused again, and no copy waiting on the key ever sees it rolled back.
            taken.refusal = order.already_paid
        taken.save(update_fields=["payment", "refusal"])
    return taken


def _locking(order: _Order) -> Receipt:
    # The invoice's row lock makes the check and the charge one at a time (on SQLite, the write
    # lock the transaction takes at BEGIN does). Correct, but not idempotent: a form submitted
    # twice is told the second time that the invoice is paid, not given its first answer.
    with transaction.atomic():
        invoice = order.invoice(for_update=True)
        if invoice.paid_at is not None:
            raise PaymentRefused(order.already_paid)
        return order.settle(invoice)


_IMPLEMENTATIONS: dict[Strategy, Callable[[_Order], Receipt]] = {
    Strategy.NAIVE: _naive,
    Strategy.IDEMPOTENCY_KEY: _idempotency_key,
    Strategy.LOCKING: _locking,
}
