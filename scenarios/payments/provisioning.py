"""Put the payment scenario's data into a known state: its invoice, unpaid, with no payment and
no idempotency key taken."""

from django.db import transaction

from scenarios.payments.models import IdempotencyKey, Invoice, Payment

LAB_INVOICE = "LAB-INVOICE"
# The key the lab's payment form carries: every request of a run is the same form, sent again.
LAB_KEY = "LAB-PAYMENT-1"
INVOICE_AMOUNT = 100


@transaction.atomic
def seed_invoice() -> str:
    """Create the invoice or make it unpaid again, and clear its payments and the keys taken for
    it; says what it did."""
    invoice, created = Invoice.objects.update_or_create(
        number=LAB_INVOICE, defaults={"amount": INVOICE_AMOUNT, "paid_at": None}
    )
    keys, _ = IdempotencyKey.objects.filter(invoice_number=LAB_INVOICE).delete()
    payments, _ = invoice.payments.all().delete()
    action = "Created" if created else "Reset"
    return (
        f"{action} invoice {LAB_INVOICE}: {INVOICE_AMOUNT} to pay, unpaid; {payments} payment(s) "
        f"and {keys} idempotency key(s) cleared."
    )


def lab_invoice_exists() -> bool:
    return Invoice.objects.filter(number=LAB_INVOICE).exists()


@transaction.atomic
def reset_payments() -> str:
    """Every invoice unpaid again, every payment and idempotency key deleted; says what it did."""
    keys, _ = IdempotencyKey.objects.all().delete()
    payments, _ = Payment.objects.all().delete()
    count = Invoice.objects.update(paid_at=None)
    return f"Reset {count} invoice(s) to unpaid: {payments} payment(s) and {keys} idempotency key(s) cleared."
