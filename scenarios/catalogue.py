"""The scenarios the lab reproduces beside the bank's withdrawal: where each lives, what it sends,
where race mode holds it, and how its data is seeded, reset and checked."""

from collections.abc import Callable
from dataclasses import dataclass

from scenarios.audit import ScenarioAudit
from scenarios.vouchers import provisioning as voucher_data
from scenarios.vouchers.audit import audit_vouchers
from scenarios.vouchers.models import VoucherUsage
from scenarios.vouchers.redemptions import Strategy as VoucherStrategy


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    title: str
    # The published bug it reproduces.
    bug: str
    # The endpoint: POSTed with ?strategy=NAME and ``fields`` as a form.
    path: str
    fields: dict[str, str]
    strategies: tuple[str, ...]  # the naive one (the bug) first
    # Where race mode holds a request (racewindow.park_points): right after the read it decides on.
    park_point: str
    # Strategies that never send the park point's statement (they write without that read), so
    # race mode holds none of their requests.
    never_held: tuple[str, ...] = ()
    # What K naive requests held together break, as the checker counts it, given the audit of
    # the data they ran on (its figures say how much there was to break).
    naive_violations: Callable[[int, ScenarioAudit], int]
    # What a reset deletes, said to the user before it does.
    recorded: str
    seed: Callable[..., str]
    is_seeded: Callable[[], bool]
    reset: Callable[[], str]
    audit: Callable[[], ScenarioAudit]


VOUCHER = Scenario(
    name="voucher",
    title="single-use voucher, check then act",
    bug="https://github.com/django-oscar/django-oscar/issues/2101",
    path="/scenarios/voucher/redeem/",
    fields={"code": voucher_data.LAB_VOUCHER},
    strategies=tuple(VoucherStrategy),
    park_point=VoucherUsage._meta.db_table,
    never_held=(VoucherStrategy.CONDITIONAL_UPDATE,),
    # All K read no use taken, and all K use it: K - limit beyond it (K-1 for a single use).
    naive_violations=lambda parties, audit: max(0, parties - dict(audit.figures)["uses allowed"]),
    recorded="every voucher usage",
    seed=voucher_data.seed_voucher,
    is_seeded=voucher_data.lab_voucher_exists,
    reset=voucher_data.reset_vouchers,
    audit=lambda: audit_vouchers(code=voucher_data.LAB_VOUCHER),
)

SCENARIOS = {scenario.name: scenario for scenario in (VOUCHER,)}
