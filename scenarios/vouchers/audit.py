"""The voucher checker: no voucher is used more often than its limit, proved from the usage rows."""

from scenarios.audit import ScenarioAudit, violated
from scenarios.limits import Counted
from scenarios.vouchers.models import USES

INVARIANT = "usages per voucher at most its limit"
OVERUSES = "overused vouchers"


def audit_vouchers(*, code: str | None = None) -> ScenarioAudit:
    """Count each voucher's usage rows against its limit (one statement), then fetch examples
    only for the vouchers that broke it."""
    vouchers = USES.counted(code)
    overused = [voucher for voucher in vouchers if voucher.beyond > 0]
    figures = [
        ("vouchers", len(vouchers)),
        ("uses allowed", sum(voucher.limit for voucher in vouchers)),
        ("usage rows", sum(voucher.taken for voucher in vouchers)),
        ("vouchers over their limit", len(overused)),
        ("uses beyond a limit", sum(voucher.beyond for voucher in overused)),
    ]
    violations = violated(
        OVERUSES,
        broken=overused,
        count=sum(voucher.beyond for voucher in overused),
        explanation="uses recorded beyond a voucher's limit: concurrent requests all passed the check "
        "before any of them recorded its use",
        worst=lambda voucher: (voucher.beyond, -voucher.pk),
        example=_example,
    )
    return ScenarioAudit(scenario="voucher", invariant=INVARIANT, figures=figures, violations=violations)


def _example(voucher: Counted) -> dict:
    return {
        "voucher": voucher.name,
        "limit": voucher.limit,
        "usages": voucher.taken,
        "usage_ids_beyond_limit": USES.ids_beyond(voucher),
    }
