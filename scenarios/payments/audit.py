"""The payment checker: each invoice is paid once and each idempotency key pays once, proved from
the payment rows."""

from dataclasses import dataclass, field

from django.db.models import Count, Q

from scenarios.audit import ScenarioAudit, violated
from scenarios.payments.models import Invoice, Payment

INVARIANT = "one payment per invoice and per idempotency key"
DUPLICATES = "duplicate payments"
EXAMPLE_IDS = 5


def audit_payments(*, invoice: str | None = None) -> ScenarioAudit:
    """Find the invoices and the keys with more than one payment (one statement each), then walk
    only their payments: each that repeats an earlier payment's invoice or key is a duplicate,
    counted once even when it repeats both."""
    invoices = Invoice.objects.all() if invoice is None else Invoice.objects.filter(number=invoice)
    payments = Payment.objects.filter(invoice__in=invoices)
    doubled_invoices = list(
        payments.values("invoice")
        .annotate(paid=Count("pk"))
        .filter(paid__gt=1)
        .values_list("invoice", flat=True)
    )
    doubled_keys = list(
        payments.values_list("user", "idempotency_key").annotate(paid=Count("pk")).filter(paid__gt=1)
    )
    suspects = Q(invoice__in=doubled_invoices)
    for user_id, key, _ in doubled_keys:
        suspects |= Q(user_id=user_id, idempotency_key=key)
    rows = (
        payments.filter(suspects)
        .order_by("pk")
        .values_list("pk", "invoice__number", "user_id", "idempotency_key")
    )
    repeats = _repeats(list(rows))
    duplicates = sum(len(repeated.later) for repeated in repeats.values())
    counted = invoices.aggregate(all=Count("pk"), paid=Count("pk", filter=Q(paid_at__isnull=False)))
    figures = [
        ("invoices", counted["all"]),
        ("invoices paid", counted["paid"]),
        ("payments", payments.count()),
        ("invoices paid more than once", len(doubled_invoices)),
        ("keys that paid more than once", len(doubled_keys)),
        ("duplicate payments", duplicates),
    ]
    violations = violated(
        DUPLICATES,
        broken=sorted(repeats),
        count=duplicates,
        explanation="payments that repeat an earlier one's invoice or idempotency key: a form submitted "
        "again while the first submit was in flight found the invoice unpaid and charged it again",
        worst=lambda original: (len(repeats[original].later), -original),
        example=lambda original: repeats[original].example(),
    )
    return ScenarioAudit(scenario="payment", invariant=INVARIANT, figures=figures, violations=violations)


@dataclass
class _Repeated:
    """A payment, and the later ones that charged its invoice or its key again."""

    payment_id: int
    invoice: str
    key: str
    later: list[int] = field(default_factory=list)

    def example(self) -> dict:
        return {
            "payment_id": self.payment_id,
            "invoice": self.invoice,
            "idempotency_key": self.key,
            "payments": 1 + len(self.later),
            "duplicate_ids": self.later[:EXAMPLE_IDS],
        }


def _repeats(rows: list[tuple[int, str, int, str]]) -> dict[int, _Repeated]:
    """The payments that were repeated, by id, from ``rows`` in id order."""
    first_of_invoice: dict[str, int] = {}
    first_of_key: dict[tuple[int, str], int] = {}
    payments: dict[int, _Repeated] = {}
    # Each payment's original: a repeat of a repeat is counted against the payment that began it.
    original: dict[int, int] = {}
    for pk, number, user_id, key in rows:
        earlier = first_of_invoice.get(number) or first_of_key.get((user_id, key))
        first_of_invoice.setdefault(number, pk)
        first_of_key.setdefault((user_id, key), pk)
        if earlier is None:
            original[pk] = pk
            payments[pk] = _Repeated(payment_id=pk, invoice=number, key=key)
        else:
            original[pk] = original[earlier]
            payments[original[pk]].later.append(pk)
    return {pk: payment for pk, payment in payments.items() if payment.later}
