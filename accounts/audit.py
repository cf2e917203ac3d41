"""The checker: prove anomalies from the recorded history, in the spirit of Jepsen's bank checker.

Everything is computed with SQL aggregates, so memory stays flat however long the ledger is.
"""

import enum
from dataclasses import dataclass, field

from django.db.models import Count, F, Min, Q, QuerySet, Sum

from accounts.models import Account, ClientRun, Transaction


class AnomalyKind(enum.StrEnum):
    LOST_WITHDRAWALS = "lost withdrawals"
    UNRECORDED_DECREASE = "unrecorded decrease"
    LOST_UPDATES = "lost updates"
    OVERDRAFTS = "overdrafts"
    DUPLICATE_BALANCES = "duplicate balances"
    PHANTOM_ROWS = "phantom rows"
    MISSING_ROWS = "missing rows"
    OUT_OF_BOUNDS = "final balance out of bounds"


EXAMPLE_LEDGER_IDS = 5


@dataclass(frozen=True)
class Anomaly:
    kind: AnomalyKind
    count: int
    explanation: str
    first: dict | None = None
    worst: dict | None = None


@dataclass(frozen=True)
class ClientOutcomes:
    """What the load drivers saw, summed over the runs recorded since the last reset."""

    runs: int
    ok: int
    failed: int
    indeterminate: int
    lowest_final: int
    highest_final: int


@dataclass(frozen=True)
class StrategyAudit:
    strategy: str
    ledger_rows: int
    withdrawn: int
    lost_updates: int
    overdrafts: int


@dataclass(frozen=True)
class AccountAudit:
    account_id: int
    username: str
    opening: int
    minimum: int
    final: int
    ledger_rows: int
    withdrawn: int
    decrease: int
    lost_withdrawals: int
    distinct_balances: int
    duplicate_balances: int
    lost_updates: int
    overdrafts: int
    by_strategy: list[StrategyAudit]
    client: ClientOutcomes | None
    anomalies: list[Anomaly] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if not self.anomalies:
            return "OK"
        return "ANOMALIES: " + ", ".join(anomaly.kind for anomaly in self.anomalies)


def audit_accounts(*, username: str | None = None) -> list[AccountAudit]:
    accounts = Account.objects.select_related("user").order_by("pk")
    if username is not None:
        accounts = accounts.filter(user__username=username)
    return [audit_account(account=account) for account in accounts]


def audit_account(*, account: Account) -> AccountAudit:
    ledger = Transaction.objects.filter(holder=account)
    totals = ledger.aggregate(
        rows=Count("id"),
        withdrawn=Sum("amount", default=0),
        distinct_reads=Count("balance_before", distinct=True),
        distinct_writes=Count("balance", distinct=True),
        overdrafts=Count("id", filter=Q(balance__lt=account.minimum)),
    )
    rows = totals["rows"]
    decrease = account.opening - account.current
    lost_updates = rows - totals["distinct_reads"]
    duplicate_balances = rows - totals["distinct_writes"]
    client = _client_outcomes(account=account)
    anomalies = []
    lost = totals["withdrawn"] - decrease
    if lost > 0:
        anomalies.append(
            Anomaly(
                AnomalyKind.LOST_WITHDRAWALS,
                lost,
                f"the ledger records {totals['withdrawn']} withdrawn, "
                f"but the balance fell by only {decrease}",
            )
        )
    elif lost < 0:
        anomalies.append(
            Anomaly(
                AnomalyKind.UNRECORDED_DECREASE,
                -lost,
                f"the balance fell by {decrease}, "
                f"but the ledger records only {totals['withdrawn']} withdrawn",
            )
        )
    if lost_updates:
        anomalies.append(
            _repeated_value_anomaly(ledger, "balance_before", AnomalyKind.LOST_UPDATES, lost_updates)
        )
    if totals["overdrafts"] or account.current < account.minimum:
        anomalies.append(_overdraft_anomaly(ledger, account=account, rows=totals["overdrafts"]))
    if duplicate_balances:
        anomalies.append(
            _repeated_value_anomaly(ledger, "balance", AnomalyKind.DUPLICATE_BALANCES, duplicate_balances)
        )
    if client is not None:
        anomalies.extend(_client_anomalies(account=account, client=client, rows=rows))
    return AccountAudit(
        account_id=account.pk,
        username=account.user.username if account.user else "",
        opening=account.opening,
        minimum=account.minimum,
        final=account.current,
        ledger_rows=rows,
        withdrawn=totals["withdrawn"],
        decrease=decrease,
        lost_withdrawals=max(lost, 0),
        distinct_balances=totals["distinct_writes"],
        duplicate_balances=duplicate_balances,
        lost_updates=lost_updates,
        overdrafts=totals["overdrafts"],
        by_strategy=_by_strategy(ledger, minimum=account.minimum),
        client=client,
        anomalies=anomalies,
    )


def _by_strategy(ledger: QuerySet, *, minimum: int) -> list[StrategyAudit]:
    groups = (
        ledger.values("strategy")
        .annotate(
            rows=Count("id"),
            withdrawn=Sum("amount"),
            distinct_reads=Count("balance_before", distinct=True),
            overdrafts=Count("id", filter=Q(balance__lt=minimum)),
        )
        .order_by("strategy")
    )
    return [
        StrategyAudit(
            strategy=group["strategy"],
            ledger_rows=group["rows"],
            withdrawn=group["withdrawn"],
            lost_updates=group["rows"] - group["distinct_reads"],
            overdrafts=group["overdrafts"],
        )
        for group in groups
    ]


_REPEATED_VALUE_EXPLANATIONS = {
    "balance_before": "successful withdrawals that read a balance another one had already read "
    "(each overwrote the other's write)",
    "balance": "withdrawals that wrote a balance another one had already written",
}


def _repeated_value_anomaly(ledger: QuerySet, column: str, kind: str, count: int) -> Anomaly:
    groups = (
        ledger.values(column).annotate(withdrawals=Count("id"), first_id=Min("id")).filter(withdrawals__gt=1)
    )
    first = groups.order_by("first_id").first()
    worst = groups.order_by("-withdrawals", "first_id").first()
    return Anomaly(
        kind,
        count,
        _REPEATED_VALUE_EXPLANATIONS[column],
        first=_group_example(ledger, column, first),
        worst=_group_example(ledger, column, worst),
    )


def _group_example(ledger: QuerySet, column: str, group: dict) -> dict:
    ids = ledger.filter(**{column: group[column]}).order_by("id").values_list("id", flat=True)
    return {
        column: group[column],
        "withdrawals": group["withdrawals"],
        "ledger_ids": list(ids[:EXAMPLE_LEDGER_IDS]),
    }


def _overdraft_anomaly(ledger: QuerySet, *, account: Account, rows: int) -> Anomaly:
    below = ledger.filter(balance__lt=account.minimum)
    first = below.order_by("id").first()
    worst = below.order_by("balance", "id").first()
    return Anomaly(
        AnomalyKind.OVERDRAFTS,
        rows,
        f"withdrawals that took the balance below the minimum of {account.minimum} "
        f"(final balance {account.current})",
        first=_row_example(first),
        worst=_row_example(worst),
    )


def _row_example(row: Transaction | None) -> dict | None:
    if row is None:
        return None
    return {
        "ledger_id": row.pk,
        "strategy": row.strategy,
        "amount": row.amount,
        "balance_before": row.balance_before,
        "balance": row.balance,
    }


def _client_outcomes(*, account: Account) -> ClientOutcomes | None:
    runs = ClientRun.objects.filter(account=account).aggregate(
        runs=Count("id"),
        ok_total=Sum("ok", default=0),
        failed_total=Sum("failed", default=0),
        indeterminate_total=Sum("indeterminate", default=0),
        ok_amount=Sum(F("ok") * F("amount"), default=0),
        indeterminate_amount=Sum(F("indeterminate") * F("amount"), default=0),
    )
    if not runs["runs"]:
        return None
    return ClientOutcomes(
        runs=runs["runs"],
        ok=runs["ok_total"],
        failed=runs["failed_total"],
        indeterminate=runs["indeterminate_total"],
        lowest_final=account.opening - runs["ok_amount"] - runs["indeterminate_amount"],
        highest_final=account.opening - runs["ok_amount"],
    )


def _client_anomalies(*, account: Account, client: ClientOutcomes, rows: int) -> list[Anomaly]:
    anomalies = []
    if rows > client.ok + client.indeterminate:
        anomalies.append(
            Anomaly(
                AnomalyKind.PHANTOM_ROWS,
                rows - client.ok - client.indeterminate,
                f"{rows} ledger rows, but clients saw only {client.ok} successes "
                f"and {client.indeterminate} indeterminate requests",
            )
        )
    if rows < client.ok:
        anomalies.append(
            Anomaly(
                AnomalyKind.MISSING_ROWS,
                client.ok - rows,
                f"clients saw {client.ok} successes, but the ledger has only {rows} rows",
            )
        )
    if not client.lowest_final <= account.current <= client.highest_final:
        distance = max(client.lowest_final - account.current, account.current - client.highest_final)
        anomalies.append(
            Anomaly(
                AnomalyKind.OUT_OF_BOUNDS,
                distance,
                f"final balance {account.current} lies outside "
                f"[{client.lowest_final}, {client.highest_final}], the range the clients' "
                "ok and indeterminate requests allow",
            )
        )
    return anomalies
