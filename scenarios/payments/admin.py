from races.admin import register_admin
from scenarios.payments.models import IdempotencyKey, Invoice, Payment

register_admin(Invoice, "number", "amount", "paid_at", search=("number",))
register_admin(Payment, "invoice", "user", "idempotency_key", "amount", search=("idempotency_key",))
register_admin(
    IdempotencyKey,
    "key",
    "user",
    "invoice_number",
    "payment",
    "refusal",
    "created_at",
    search=("key", "invoice_number"),
)
