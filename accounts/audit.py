"""The checker: prove anomalies from the recorded history, in the spirit of Jepsen's bank checker.

Everything is computed with SQL aggregates, so memory stays flat however long the ledger is, and
the headline figures of all the audited accounts take three statements, however many accounts:

- the accounts, each with its distinct balances read and written and its rows below the minimum,
  as correlated subqueries on the account's part of the covering ledger indexes;
- one pass over the ledger, grouped by account: rows, sum withdrawn, lowest and highest strategy;
- the runs since each account's last reset, what the client saw summed per account.

Accounts whose rows carry more than one strategy add one grouped query for all of them, for their
per-strategy breakdown; an account with anomalies adds the queries that find its examples.
"""

import enum
from dataclasses import asdict, dataclass, field

from django.db.models import Aggregate, Count, F, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum, Value

from accounts.models import Account, Run, Transaction
from races.violations import Violation, verdict


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
# The `schema` of an account's audit document, as docs/json-schema.json names it: a renamed or
# removed field takes a new version (and a migration of the audits runs keep).
ACCOUNT_AUDIT_SCHEMA = "account-audit/1"


@dataclass(frozen=True)
class ClientOutcomes:
    """What the load drivers saw, summed over the runs recorded since the last reset."""

    runs: int
    ok: int
    refused: int
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
    anomalies: list[Violation] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return verdict(self.anomalies)


def audit_document(audit: AccountAudit) -> dict:
    """The audit as plain data: what ``audit_transactions --format json`` prints, and a run keeps."""
    return {"schema": ACCOUNT_AUDIT_SCHEMA, **asdict(audit), "verdict": audit.verdict}


def headline_rows(document: dict) -> list[tuple[str, object]]:
    """The audit's headline figures as (label, value) rows, from ``audit_document``'s data: the
    command's table and the lab report page show the same rows."""
    rows = [
        ("user", document["username"] or "(no owner)"),
        ("opening balance", document["opening"]),
        ("final balance", document["final"]),
        ("ledger rows", document["ledger_rows"]),
        ("withdrawn (ledger)", document["withdrawn"]),
        ("actual decrease", document["decrease"]),
        ("lost withdrawals", document["lost_withdrawals"]),
        ("lost updates", document["lost_updates"]),
        ("overdrafts", document["overdrafts"]),
        ("distinct balances", document["distinct_balances"]),
        ("duplicate balances", document["duplicate_balances"]),
        (
            "strategies",
            ", ".join(f"{s['strategy']} ({s['ledger_rows']})" for s in document["by_strategy"]) or "-",
        ),
    ]
    client = document["client"]
    if client is not None:
        rows += [
            (
                "client: ok / refused / indeterminate",
                f"{client['ok']} / {client['refused']} / {client['indeterminate']}",
            ),
            ("client: allowed final balance", f"[{client['lowest_final']}, {client['highest_final']}]"),
        ]
    return rows


def audit_accounts(*, username: str | None = None) -> list[AccountAudit]:
    """Every account (or the user's), in id order, from a fixed number of statements."""
    accounts = Account.objects.all()
    ledger = Transaction.objects.all()
    runs = Run.objects.filter(since_reset=True)
    if username is not None:
        accounts = accounts.filter(user__username=username)
        ledger = ledger.filter(holder__user__username=username)
        runs = runs.filter(account__user__username=username)
    return _audit(accounts=accounts, ledger=ledger, runs=runs)


def audit_account(*, account: Account) -> AccountAudit:
    """One account, read afresh from the database with its ledger and its runs since its reset."""
    (audit,) = _audit(
        accounts=Account.objects.filter(pk=account.pk),
        ledger=Transaction.objects.filter(holder=account),
        runs=Run.objects.filter(account=account, since_reset=True),
    )
    return audit


@dataclass(frozen=True, kw_only=True)
class _LedgerTotals:
    """An account's rows from the one pass over the ledger; an account without rows has none."""

    rows: int = 0
    withdrawn: int = 0
    lowest_strategy: str | None = None
    highest_strategy: str | None = None


_NO_ROWS = _LedgerTotals()


def _audit(*, accounts: QuerySet, ledger: QuerySet, runs: QuerySet) -> list[AccountAudit]:
    """The same accounts, ledger rows and runs, each narrowed alike (or not at all)."""
    accounts = list(
        accounts.select_related("user")
        .annotate(
            distinct_reads=_per_account(Count("balance_before", distinct=True)),
            distinct_writes=_per_account(Count("balance", distinct=True)),
            overdrafts=_per_account(Count("id"), balance__lt=OuterRef("minimum")),
        )
        .order_by("pk")
    )
    totals = _ledger_totals(ledger)
    clients = _client_outcomes(runs, openings={account.pk: account.opening for account in accounts})
    breakdowns = _by_strategy(ledger, accounts=accounts, totals=totals)
    return [
        _account_audit(
            account,
            totals=totals.get(account.pk, _NO_ROWS),
            by_strategy=breakdowns[account.pk],
            client=clients.get(account.pk),
        )
        for account in accounts
    ]


def _per_account(aggregate: Aggregate, **condition) -> Subquery:
    """One figure over an account's ledger rows, as a correlated subquery on the account's row.

    Distinct balances read and written and the rows below the minimum are answered from the
    account's part of the covering indexes ledger_holder_read and ledger_holder_written
    (holder, balance..., id), without touching the table; SQLite counts the distinct balances in
    index order, without sorting. Grouping by a constant leaves out GROUP BY (Django drops
    constants from it): a plain aggregate, one row even for an account without rows (0), and
    25% faster on SQLite than the documented ``values("holder")`` idiom.
    """
    rows = Transaction.objects.filter(holder=OuterRef("pk"), **condition).order_by()
    return Subquery(rows.values(whole=Value(1)).annotate(figure=aggregate).values("figure"))


def _ledger_totals(ledger: QuerySet) -> dict[int, _LedgerTotals]:
    """Rows, sum withdrawn and the lowest and highest strategy of each account, in one pass."""
    groups = (
        ledger.order_by()
        .values("holder")
        .annotate(
            rows=Count("id"),
            withdrawn=Sum("amount"),
            lowest_strategy=Min("strategy"),
            highest_strategy=Max("strategy"),
        )
    )
    return {
        group["holder"]: _LedgerTotals(
            rows=group["rows"],
            withdrawn=group["withdrawn"],
            lowest_strategy=group["lowest_strategy"],
            highest_strategy=group["highest_strategy"],
        )
        for group in groups
    }


def _by_strategy(
    ledger: QuerySet, *, accounts: list[Account], totals: dict[int, _LedgerTotals]
) -> dict[int, list[StrategyAudit]]:
    """Each account's figures per strategy, in strategy order.

    An account whose rows all carry one strategy has one line, its totals. The others share
    one grouped query, which counts distinct balances read or rows below the minimum only when
    one of them has lost updates or overdrafts at all: a subset of rows whose balances read are
    all distinct, or all above the minimum, has no lost update or overdraft either.
    """
    breakdowns: dict[int, list[StrategyAudit]] = {}
    mixed = []
    for account in accounts:
        rows = totals.get(account.pk, _NO_ROWS)
        breakdowns[account.pk] = []
        if not rows.rows:
            continue
        if rows.lowest_strategy != rows.highest_strategy:
            mixed.append(account)
            continue
        breakdowns[account.pk].append(
            StrategyAudit(
                strategy=rows.lowest_strategy,
                ledger_rows=rows.rows,
                withdrawn=rows.withdrawn,
                lost_updates=rows.rows - account.distinct_reads,
                overdrafts=account.overdrafts,
            )
        )
    if not mixed:
        return breakdowns
    figures = {"rows": Count("id"), "withdrawn": Sum("amount")}
    if any(totals[account.pk].rows > account.distinct_reads for account in mixed):
        figures["distinct_reads"] = Count("balance_before", distinct=True)
    if any(account.overdrafts for account in mixed):
        figures["overdrafts"] = Count("id", filter=Q(balance__lt=F("holder__minimum")))
    groups = (
        ledger.filter(holder__in=[account.pk for account in mixed])
        .values("holder", "strategy")
        .annotate(**figures)
        .order_by("holder", "strategy")
    )
    for group in groups:
        breakdowns[group["holder"]].append(
            StrategyAudit(
                strategy=group["strategy"],
                ledger_rows=group["rows"],
                withdrawn=group["withdrawn"],
                lost_updates=group["rows"] - group.get("distinct_reads", group["rows"]),
                overdrafts=group.get("overdrafts", 0),
            )
        )
    return breakdowns


def _account_audit(
    account: Account,
    *,
    totals: _LedgerTotals,
    by_strategy: list[StrategyAudit],
    client: ClientOutcomes | None,
) -> AccountAudit:
    """The headline figures and the anomalies they show; only an anomaly's examples query more."""
    ledger = Transaction.objects.filter(holder=account)
    rows = totals.rows
    decrease = account.opening - account.current
    lost_updates = rows - account.distinct_reads
    duplicate_balances = rows - account.distinct_writes
    anomalies = []
    lost = totals.withdrawn - decrease
    if lost > 0:
        anomalies.append(
            Violation(
                kind=AnomalyKind.LOST_WITHDRAWALS,
                count=lost,
                explanation=f"the ledger records {totals.withdrawn} withdrawn, but the balance fell by "
                f"only {decrease}",
            )
        )
    elif lost < 0:
        anomalies.append(
            Violation(
                kind=AnomalyKind.UNRECORDED_DECREASE,
                count=-lost,
                explanation=f"the balance fell by {decrease}, but the ledger records only "
                f"{totals.withdrawn} withdrawn",
            )
        )
    if lost_updates:
        anomalies.append(
            _repeated_value_anomaly(ledger, "balance_before", AnomalyKind.LOST_UPDATES, lost_updates)
        )
    if account.overdrafts or account.current < account.minimum:
        anomalies.append(_overdraft_anomaly(ledger, account=account, rows=account.overdrafts))
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
        withdrawn=totals.withdrawn,
        decrease=decrease,
        lost_withdrawals=max(lost, 0),
        distinct_balances=account.distinct_writes,
        duplicate_balances=duplicate_balances,
        lost_updates=lost_updates,
        overdrafts=account.overdrafts,
        by_strategy=by_strategy,
        client=client,
        anomalies=anomalies,
    )


_REPEATED_VALUE_EXPLANATIONS = {
    "balance_before": "successful withdrawals that read a balance another one had already read "
    "(each overwrote the other's write)",
    "balance": "withdrawals that wrote a balance another one had already written",
}


def _repeated_value_anomaly(ledger: QuerySet, column: str, kind: str, count: int) -> Violation:
    groups = (
        ledger.values(column).annotate(withdrawals=Count("id"), first_id=Min("id")).filter(withdrawals__gt=1)
    )
    first = groups.order_by("first_id").first()
    worst = groups.order_by("-withdrawals", "first_id").first()
    return Violation(
        kind=kind,
        count=count,
        explanation=_REPEATED_VALUE_EXPLANATIONS[column],
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


def _overdraft_anomaly(ledger: QuerySet, *, account: Account, rows: int) -> Violation:
    below = ledger.filter(balance__lt=account.minimum)
    first = below.order_by("id").first()
    worst = below.order_by("balance", "id").first()
    return Violation(
        kind=AnomalyKind.OVERDRAFTS,
        count=rows,
        explanation=f"withdrawals that took the balance below the minimum of {account.minimum} "
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


def _client_outcomes(runs: QuerySet, *, openings: dict[int, int]) -> dict[int, ClientOutcomes]:
    """The runs of every audited account, what the client saw summed per account in one query."""
    groups = (
        runs.order_by()
        .values("account")
        .annotate(
            runs=Count("id"),
            ok_total=Sum("ok"),
            refused_total=Sum("refused"),
            indeterminate_total=Sum("indeterminate"),
            ok_amount=Sum(F("ok") * F("amount")),
            indeterminate_amount=Sum(F("indeterminate") * F("amount")),
        )
    )
    return {
        group["account"]: ClientOutcomes(
            runs=group["runs"],
            ok=group["ok_total"],
            refused=group["refused_total"],
            indeterminate=group["indeterminate_total"],
            lowest_final=openings[group["account"]] - group["ok_amount"] - group["indeterminate_amount"],
            highest_final=openings[group["account"]] - group["ok_amount"],
        )
        for group in groups
        if group["account"] in openings
    }


def _client_anomalies(*, account: Account, client: ClientOutcomes, rows: int) -> list[Violation]:
    anomalies = []
    if rows > client.ok + client.indeterminate:
        anomalies.append(
            Violation(
                kind=AnomalyKind.PHANTOM_ROWS,
                count=rows - client.ok - client.indeterminate,
                explanation=f"{rows} ledger rows, but clients saw only {client.ok} successes "
                f"and {client.indeterminate} indeterminate requests",
            )
        )
    if rows < client.ok:
        anomalies.append(
            Violation(
                kind=AnomalyKind.MISSING_ROWS,
                count=client.ok - rows,
                explanation=f"clients saw {client.ok} successes, but the ledger has only {rows} rows",
            )
        )
    if not client.lowest_final <= account.current <= client.highest_final:
        distance = max(client.lowest_final - account.current, account.current - client.highest_final)
        anomalies.append(
            Violation(
                kind=AnomalyKind.OUT_OF_BOUNDS,
                count=distance,
                explanation=f"final balance {account.current} lies outside "
                f"[{client.lowest_final}, {client.highest_final}], the range the clients' "
                "ok and indeterminate requests allow",
            )
        )
    return anomalies
