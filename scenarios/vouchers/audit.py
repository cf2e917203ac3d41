"""The voucher checker: no voucher is used more often than its limit, proved from the usage rows."""

from django.db.models import Count

from races.violations import Violation
from scenarios.audit import ScenarioAudit
from scenarios.vouchers.models import Voucher, VoucherUsage

INVARIANT = "usages per voucher at most its limit"
OVERUSES = "overused vouchers"


def audit_vouchers(*, code: str | None = None) -> ScenarioAudit:
    """Count each voucher's usage rows against its limit (one statement), then fetch examples
    only for the vouchers that broke it."""
    vouchers = Voucher.objects.all() if code is None else Voucher.objects.filter(code=code)
    counted = vouchers.annotate(used=Count("usages")).values_list("pk", "code", "limit", "used")
    rows = list(counted.order_by("pk"))
    overused = [(pk, voucher_code, limit, used) for pk, voucher_code, limit, used in rows if used > limit]
    figures = [
        ("vouchers", len(rows)),
        ("uses allowed", sum(limit for _, _, limit, _ in rows)),
        ("usage rows", sum(used for *_, used in rows)),
        ("vouchers over their limit", len(overused)),
        ("uses beyond a limit", sum(used - limit for _, _, limit, used in overused)),
    ]
    violations = []
    if overused:
        worst = max(overused, key=lambda row: (row[3] - row[2], -row[0]))
        violations.append(
            Violation(
                kind=OVERUSES,
                count=sum(used - limit for _, _, limit, used in overused),
                explanation="uses recorded beyond a voucher's limit: concurrent requests all passed "
                "the check before any of them recorded its use",
                first=_example(overused[0]),
                worst=_example(worst),
            )
        )
    return ScenarioAudit(scenario="voucher", invariant=INVARIANT, figures=figures, violations=violations)


def _example(row: tuple[int, str, int, int]) -> dict:
    pk, code, limit, used = row
    beyond = (
        VoucherUsage.objects.filter(voucher_id=pk).order_by("pk").values_list("pk", flat=True)[limit:][:5]
    )
    return {"voucher": code, "limit": limit, "usages": used, "usage_ids_beyond_limit": list(beyond)}
