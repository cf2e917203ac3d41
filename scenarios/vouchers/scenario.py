from scenarios.definition import Scenario
from scenarios.vouchers import provisioning
from scenarios.vouchers.audit import audit_vouchers
from scenarios.vouchers.models import VoucherUsage
from scenarios.vouchers.redemptions import Strategy

VOUCHER = Scenario(
    name="voucher",
    title="single-use voucher, check then act",
    bug="https://github.com/django-oscar/django-oscar/issues/2101",
    path="/scenarios/voucher/redeem/",
    forms=({"code": provisioning.LAB_VOUCHER},),
    strategies=tuple(Strategy),
    park_point=VoucherUsage._meta.db_table,
    never_held=(Strategy.CONDITIONAL_UPDATE,),
    # All K read no use taken, and all K use it: K - limit beyond it (K-1 for a single use).
    naive_violations=lambda parties, audit: max(0, parties - dict(audit.figures)["uses allowed"]),
    limit_help=f"how many uses the voucher allows (default {provisioning.DEFAULT_LIMIT})",
    recorded="every voucher usage",
    seed=provisioning.seed_voucher,
    is_seeded=provisioning.lab_voucher_exists,
    reset=provisioning.reset_vouchers,
    audit=lambda: audit_vouchers(code=provisioning.LAB_VOUCHER),
)
