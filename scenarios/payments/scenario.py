from scenarios.definition import Scenario
from scenarios.payments import provisioning
from scenarios.payments.audit import audit_payments
from scenarios.payments.charges import Strategy
from scenarios.payments.models import Invoice

PAYMENT = Scenario(
    name="payment",
    title="payment form submitted twice, check then charge",
    bug="https://github.com/magento/magento2/issues/10767",
    path="/scenarios/payment/pay/",
    forms=({"invoice": provisioning.LAB_INVOICE, "key": provisioning.LAB_KEY},),
    strategies=tuple(Strategy),
    park_point=Invoice._meta.db_table,
    # All K read the invoice unpaid, and all K charge it: K-1 duplicate payments.
    naive_violations=lambda parties, audit: parties - 1,
    recorded="every payment and idempotency key",
    seed=provisioning.seed_invoice,
    is_seeded=provisioning.lab_invoice_exists,
    reset=provisioning.reset_payments,
    audit=lambda: audit_payments(invoice=provisioning.LAB_INVOICE),
)
