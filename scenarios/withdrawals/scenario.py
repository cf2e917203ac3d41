"""The bank's withdrawal, the race the lab began with, as one entry of the catalogue: its
endpoint, models and strategies are the bank's (``accounts/``); what is raced for is the
balance of every account a user owns, its opening balance the limit."""

from django.db import transaction

from accounts import provisioning
from accounts.audit import audit_accounts
from accounts.models import Account
from accounts.withdrawals import Strategy
from races.violations import Violation
from scenarios.audit import ScenarioAudit
from scenarios.definition import ProvisioningError, Scenario

WITHDRAW_PATH = "/accounts/withdraw/"
WITHDRAWN_AMOUNT = "1"


def seed_withdrawals(*, limit: int | None = None) -> str:
    """Every owned account back to an opening balance of ``limit`` (default: each its own), its
    ledger cleared and its runs out of the checker's count; all of them or, refused, none."""
    owners = list(
        Account.objects.filter(user__isnull=False).order_by("pk").values_list("user__username", flat=True)
    )
    if not owners:
        raise ProvisioningError("There is no account to withdraw from: create one with seed_account.")
    try:
        with transaction.atomic():
            for username in dict.fromkeys(owners):
                provisioning.reset_accounts(opening=limit, username=username)
    except provisioning.ProvisioningError as error:
        raise ProvisioningError(str(error)) from error
    balance = "their opening balance" if limit is None else f"an opening balance of {limit}"
    return f"{len(owners)} account(s) reset to {balance}, their ledgers cleared."


def lab_accounts_exist() -> bool:
    return Account.objects.filter(user__isnull=False).exists()


def reset_withdrawals() -> str:
    return seed_withdrawals()


def audit_withdrawals() -> ScenarioAudit:
    """The audits of every owned account, added up: each figure summed, one violation of each
    kind, its count summed, its explanation and example rows those of the first account found
    with it."""
    audits = [audit for audit in audit_accounts() if audit.username]
    violations: dict[str, Violation] = {}
    for audit in audits:
        for found in audit.anomalies:
            seen = violations.setdefault(found.kind, found)
            if seen is not found:
                violations[found.kind] = Violation(
                    kind=seen.kind,
                    count=seen.count + found.count,
                    explanation=seen.explanation,
                    first=seen.first,
                    worst=seen.worst,
                )
    return ScenarioAudit(
        scenario="withdrawal",
        invariant="every acknowledged withdrawal is in the balance, none takes it below its minimum",
        figures=[
            ("accounts", len(audits)),
            ("opening balance", sum(audit.opening for audit in audits)),
            ("final balance", sum(audit.final for audit in audits)),
            ("ledger rows", sum(audit.ledger_rows for audit in audits)),
            ("lost withdrawals", sum(audit.lost_withdrawals for audit in audits)),
        ],
        violations=list(violations.values()),
    )


WITHDRAWAL = Scenario(
    name="withdrawal",
    title="bank withdrawal, read-modify-write of the balance",
    bug='the blog "Concurrency, Django and Apache Bench" (docs/index.md)',
    path=WITHDRAW_PATH,
    forms=({"amount": WITHDRAWN_AMOUNT},),
    strategies=tuple(Strategy),
    park_point=Account._meta.db_table,
    # The conditional UPDATE reads the account only to word a refusal.
    held_when_refused=(Strategy.ATOMIC_UPDATE,),
    # All K read the same balance and write it less one: K-1 withdrawals lost, K-1 rows read a
    # balance another row read (lost updates), K-1 wrote one another row wrote (duplicates).
    naive_violations=lambda parties, audit: 3 * (parties - 1),
    limit_help="the opening balance of every account a user owns (default: each its own)",
    recorded="the ledger of every account a user owns",
    seed=seed_withdrawals,
    is_seeded=lab_accounts_exist,
    reset=reset_withdrawals,
    audit=audit_withdrawals,
)
