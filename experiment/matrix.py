"""Every strategy side by side: each run on a freshly reset account, then audited."""

from dataclasses import dataclass

from accounts.audit import AccountAudit, audit_account
from accounts.withdrawals import Strategy
from experiment.plan import RunPlan
from experiment.runs import RecordedRun, fire_and_record, lab_accounts, logged_in_for, reset_lab_accounts


@dataclass(frozen=True, kw_only=True)
class MatrixRow:
    strategy: Strategy
    run: RecordedRun
    audit: AccountAudit


def strategy_matrix(*, plan: RunPlan, password: str) -> list[MatrixRow]:
    """Run each of ``plan.strategies`` on a freshly reset account against the running server."""
    accounts = lab_accounts(plan=plan)
    (driver,) = plan.drivers
    (level,) = plan.levels
    rows = []
    with logged_in_for(plan=plan, name=driver, password=password) as logged:
        for strategy in plan.strategies:
            reset_lab_accounts(accounts)
            run = fire_and_record(driver=logged, accounts=accounts, strategy=strategy, plan=plan, level=level)
            (account,) = accounts.values()
            account.refresh_from_db()
            rows.append(MatrixRow(strategy=strategy, run=run, audit=audit_account(account=account)))
    return rows
