"""The checker on hand-made ledgers: each anomaly, its count, and its first and worst examples."""

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.audit import (
    EXAMPLE_LEDGER_IDS,
    AccountAudit,
    AnomalyKind,
    ClientOutcomes,
    StrategyAudit,
    audit_account,
    audit_accounts,
)
from accounts.models import Account, Transaction
from accounts.withdrawals import Strategy
from races.violations import Violation

pytestmark = pytest.mark.django_db


def settle(account: Account, current: int) -> Account:
    Account.objects.filter(pk=account.pk).update(current=current)
    account.refresh_from_db()
    return account


def anomalies(audit: AccountAudit) -> dict[str, Violation]:
    found = {anomaly.kind: anomaly for anomaly in audit.anomalies}
    assert len(found) == len(audit.anomalies), "an anomaly kind was reported twice"
    return found


def test_clean_history_has_no_anomaly(make_account, add_row, add_run):
    account = make_account(opening=100)
    add_row(account, 100, 99, strategy=Strategy.LOCKING)
    add_row(account, 99, 97, strategy=Strategy.ATOMIC_UPDATE)
    add_row(account, 97, 96, strategy=Strategy.LOCKING)
    add_run(account, ok=2, refused=4, amount=1)
    add_run(account, ok=1, amount=2)
    settle(account, 96)

    audit = audit_account(account=account)

    assert audit == AccountAudit(
        account_id=account.pk,
        username="alice",
        opening=100,
        minimum=0,
        final=96,
        ledger_rows=3,
        withdrawn=4,
        decrease=4,
        lost_withdrawals=0,
        distinct_balances=3,
        duplicate_balances=0,
        lost_updates=0,
        overdrafts=0,
        by_strategy=[
            StrategyAudit(Strategy.ATOMIC_UPDATE, ledger_rows=1, withdrawn=2, lost_updates=0, overdrafts=0),
            StrategyAudit(Strategy.LOCKING, ledger_rows=2, withdrawn=2, lost_updates=0, overdrafts=0),
        ],
        client=ClientOutcomes(runs=2, ok=3, refused=4, indeterminate=0, lowest_final=96, highest_final=96),
        anomalies=[],
    )
    assert audit.verdict == "OK"


def test_untouched_account_without_client_runs_is_clean(account):
    audit = audit_account(account=account)

    assert (audit.ledger_rows, audit.withdrawn, audit.decrease, audit.by_strategy, audit.client) == (
        0,
        0,
        0,
        [],
        None,
    )
    assert audit.verdict == "OK"


def test_lost_withdrawals_alone(make_account, add_row):
    account = make_account(opening=100)
    add_row(account, 100, 99)
    add_row(account, 99, 98)
    settle(account, 99)

    audit = audit_account(account=account)

    assert list(anomalies(audit)) == [AnomalyKind.LOST_WITHDRAWALS]
    lost = audit.anomalies[0]
    assert (lost.count, lost.first, lost.worst) == (1, None, None)
    assert lost.explanation == "the ledger records 2 withdrawn, but the balance fell by only 1"
    assert (audit.withdrawn, audit.decrease, audit.lost_withdrawals) == (2, 1, 1)
    assert audit.verdict == f"ANOMALIES: {AnomalyKind.LOST_WITHDRAWALS}"


def test_unrecorded_decrease(make_account, add_row):
    account = make_account(opening=100)
    add_row(account, 100, 99)
    settle(account, 95)

    audit = audit_account(account=account)

    assert list(anomalies(audit)) == [AnomalyKind.UNRECORDED_DECREASE]
    unrecorded = audit.anomalies[0]
    assert unrecorded.count == 4
    assert unrecorded.explanation == "the balance fell by 5, but the ledger records only 1 withdrawn"
    # An unrecorded decrease is not a lost withdrawal.
    assert audit.lost_withdrawals == 0


def test_naive_race_shows_lost_withdrawals_lost_updates_and_duplicate_balances(make_account, add_row):
    # Two requests read 100, three read 98: each group wrote the same balance over each other.
    account = make_account(opening=100)
    a = add_row(account, 100, 99)
    b = add_row(account, 100, 99)
    add_row(account, 99, 98)
    d = add_row(account, 98, 97)
    e = add_row(account, 98, 97)
    f = add_row(account, 98, 97)
    settle(account, 97)

    audit = audit_account(account=account)
    found = anomalies(audit)

    assert list(found) == [
        AnomalyKind.LOST_WITHDRAWALS,
        AnomalyKind.LOST_UPDATES,
        AnomalyKind.DUPLICATE_BALANCES,
    ]
    assert found[AnomalyKind.LOST_WITHDRAWALS].count == 3
    assert found[AnomalyKind.LOST_UPDATES].count == 3
    assert found[AnomalyKind.LOST_UPDATES].first == {
        "balance_before": 100,
        "withdrawals": 2,
        "ledger_ids": [a.pk, b.pk],
    }
    assert found[AnomalyKind.LOST_UPDATES].worst == {
        "balance_before": 98,
        "withdrawals": 3,
        "ledger_ids": [d.pk, e.pk, f.pk],
    }
    assert found[AnomalyKind.DUPLICATE_BALANCES].count == 3
    assert found[AnomalyKind.DUPLICATE_BALANCES].first == {
        "balance": 99,
        "withdrawals": 2,
        "ledger_ids": [a.pk, b.pk],
    }
    assert found[AnomalyKind.DUPLICATE_BALANCES].worst == {
        "balance": 97,
        "withdrawals": 3,
        "ledger_ids": [d.pk, e.pk, f.pk],
    }
    assert (audit.lost_updates, audit.duplicate_balances, audit.distinct_balances) == (3, 3, 3)
    assert audit.verdict == "ANOMALIES: lost withdrawals, lost updates, duplicate balances"


def test_lost_updates_worst_breaks_a_tie_by_the_earliest_group(make_account, add_row):
    account = make_account(opening=100)
    add_row(account, 100, 99)
    b = add_row(account, 99, 98)
    c = add_row(account, 99, 98)
    add_row(account, 98, 97)
    add_row(account, 98, 97)
    settle(account, 97)

    lost = anomalies(audit_account(account=account))[AnomalyKind.LOST_UPDATES]

    assert lost.count == 2
    assert lost.first == lost.worst == {"balance_before": 99, "withdrawals": 2, "ledger_ids": [b.pk, c.pk]}


def test_example_ledger_ids_are_capped(make_account, add_row):
    account = make_account(opening=100)
    rows = [add_row(account, 100, 99) for _ in range(EXAMPLE_LEDGER_IDS + 2)]
    settle(account, 99)

    lost = anomalies(audit_account(account=account))[AnomalyKind.LOST_UPDATES]

    assert lost.count == EXAMPLE_LEDGER_IDS + 1
    assert lost.worst == {
        "balance_before": 100,
        "withdrawals": EXAMPLE_LEDGER_IDS + 2,
        "ledger_ids": [row.pk for row in rows[:EXAMPLE_LEDGER_IDS]],
    }


def test_overdrafts_with_first_and_worst_rows(make_account, add_row):
    account = make_account(opening=2, minimum=0)
    add_row(account, 2, 1, strategy=Strategy.NAIVE)
    add_row(account, 1, 0, strategy=Strategy.NAIVE)
    first = add_row(account, 0, -1, strategy=Strategy.NAIVE)
    worst = add_row(account, -1, -3, strategy=Strategy.LOCKING)
    settle(account, -3)

    audit = audit_account(account=account)

    assert list(anomalies(audit)) == [AnomalyKind.OVERDRAFTS]
    overdrafts = audit.anomalies[0]
    assert overdrafts.count == audit.overdrafts == 2
    assert overdrafts.first == {
        "ledger_id": first.pk,
        "strategy": "naive",
        "amount": 1,
        "balance_before": 0,
        "balance": -1,
    }
    assert overdrafts.worst == {
        "ledger_id": worst.pk,
        "strategy": "locking",
        "amount": 2,
        "balance_before": -1,
        "balance": -3,
    }
    assert "below the minimum of 0 (final balance -3)" in overdrafts.explanation
    assert [(s.strategy, s.overdrafts) for s in audit.by_strategy] == [("locking", 1), ("naive", 1)]


def test_overdrafts_are_measured_against_the_accounts_minimum(make_account, add_row):
    account = make_account(opening=100, minimum=90)
    add_row(account, 100, 91)
    add_row(account, 91, 90)
    below = add_row(account, 90, 89)
    settle(account, 89)

    overdrafts = anomalies(audit_account(account=account))[AnomalyKind.OVERDRAFTS]

    assert overdrafts.count == 1
    assert overdrafts.first["ledger_id"] == overdrafts.worst["ledger_id"] == below.pk


def test_final_balance_below_the_minimum_without_any_ledger_row_is_an_overdraft(make_account):
    account = make_account(opening=10, minimum=5)
    settle(account, 3)

    found = anomalies(audit_account(account=account))

    assert list(found) == [AnomalyKind.UNRECORDED_DECREASE, AnomalyKind.OVERDRAFTS]
    assert found[AnomalyKind.UNRECORDED_DECREASE].count == 7
    assert (
        found[AnomalyKind.OVERDRAFTS].count,
        found[AnomalyKind.OVERDRAFTS].first,
        found[AnomalyKind.OVERDRAFTS].worst,
    ) == (0, None, None)
    assert "final balance 3" in found[AnomalyKind.OVERDRAFTS].explanation


def test_duplicate_balances_without_lost_updates(make_account, add_row):
    account = make_account(opening=100)
    r1 = add_row(account, 100, 90)
    r2 = add_row(account, 95, 90)
    r3 = add_row(account, 89, 80)
    r4 = add_row(account, 88, 80)
    r5 = add_row(account, 87, 80)
    settle(account, 100 - (10 + 5 + 9 + 8 + 7))

    audit = audit_account(account=account)

    assert list(anomalies(audit)) == [AnomalyKind.DUPLICATE_BALANCES]
    duplicates = audit.anomalies[0]
    assert duplicates.count == 3
    assert duplicates.first == {"balance": 90, "withdrawals": 2, "ledger_ids": [r1.pk, r2.pk]}
    assert duplicates.worst == {"balance": 80, "withdrawals": 3, "ledger_ids": [r3.pk, r4.pk, r5.pk]}


def test_phantom_rows(make_account, add_row, add_run):
    # The clients saw two successes; the ledger holds three withdrawals.
    account = make_account(opening=100)
    add_row(account, 100, 99)
    add_row(account, 99, 98)
    add_row(account, 98, 97)
    add_run(account, ok=2, refused=1)
    settle(account, 97)

    found = anomalies(audit_account(account=account))

    assert list(found) == [AnomalyKind.PHANTOM_ROWS, AnomalyKind.OUT_OF_BOUNDS]
    assert found[AnomalyKind.PHANTOM_ROWS].count == 1
    assert found[AnomalyKind.PHANTOM_ROWS].explanation == (
        "3 ledger rows, but clients saw only 2 successes and 0 indeterminate requests"
    )
    assert found[AnomalyKind.OUT_OF_BOUNDS].count == 1


def test_indeterminate_requests_may_account_for_extra_rows(make_account, add_row, add_run):
    account = make_account(opening=100)
    add_row(account, 100, 99)
    add_row(account, 99, 98)
    add_row(account, 98, 97)
    add_run(account, ok=2, indeterminate=1)
    settle(account, 97)

    audit = audit_account(account=account)

    assert audit.client.lowest_final == 97
    assert audit.client.highest_final == 98
    assert audit.verdict == "OK"


def test_missing_rows(make_account, add_row, add_run):
    # Three successes answered to the clients, three units gone, only two rows.
    account = make_account(opening=100)
    add_row(account, 100, 99)
    add_row(account, 99, 98)
    add_run(account, ok=3)
    settle(account, 97)

    found = anomalies(audit_account(account=account))

    assert list(found) == [AnomalyKind.UNRECORDED_DECREASE, AnomalyKind.MISSING_ROWS]
    assert found[AnomalyKind.MISSING_ROWS].count == 1
    assert (
        found[AnomalyKind.MISSING_ROWS].explanation
        == "clients saw 3 successes, but the ledger has only 2 rows"
    )
    assert found[AnomalyKind.UNRECORDED_DECREASE].count == 1


@pytest.mark.parametrize(
    ("ledger_amount", "client_amount", "distance"),
    [(5, 1, 8), (1, 5, 8)],
    ids=["below the lowest", "above the highest"],
)
def test_final_balance_out_of_bounds(make_account, add_row, add_run, ledger_amount, client_amount, distance):
    # The ledger and balance agree, the row count matches, but not what the clients were told.
    account = make_account(opening=100)
    add_row(account, 100, 100 - ledger_amount)
    add_row(account, 100 - ledger_amount, 100 - 2 * ledger_amount)
    add_run(account, ok=2, amount=client_amount)
    settle(account, 100 - 2 * ledger_amount)

    audit = audit_account(account=account)

    assert list(anomalies(audit)) == [AnomalyKind.OUT_OF_BOUNDS]
    assert audit.anomalies[0].count == distance
    bounds = f"[{100 - 2 * client_amount}, {100 - 2 * client_amount}]"
    assert audit.anomalies[0].explanation.startswith(
        f"final balance {100 - 2 * ledger_amount} lies outside {bounds}"
    )


def test_client_outcomes_sum_every_run_with_its_own_amount(make_account, add_run):
    account = make_account(opening=1_000)
    add_run(account, ok=10, refused=1, indeterminate=2, amount=3)
    add_run(account, ok=5, refused=4, indeterminate=1, amount=7)

    client = audit_account(account=account).client

    assert client == ClientOutcomes(
        runs=2,
        ok=15,
        refused=5,
        indeterminate=3,
        lowest_final=1_000 - (10 * 3 + 5 * 7) - (2 * 3 + 1 * 7),
        highest_final=1_000 - (10 * 3 + 5 * 7),
    )


def test_by_strategy_counts_lost_updates_per_strategy(make_account, add_row):
    account = make_account(opening=100)
    add_row(account, 100, 99, strategy=Strategy.NAIVE)
    add_row(account, 100, 99, strategy=Strategy.NAIVE)
    add_row(account, 99, 98, strategy=Strategy.LOCKING)
    add_row(account, 98, 97, strategy=Strategy.LOCKING)

    by_strategy = audit_account(account=account).by_strategy

    assert by_strategy == [
        StrategyAudit("locking", ledger_rows=2, withdrawn=2, lost_updates=0, overdrafts=0),
        StrategyAudit("naive", ledger_rows=2, withdrawn=2, lost_updates=1, overdrafts=0),
    ]


def test_the_audit_of_one_account_ignores_the_others(make_account, add_row, add_run):
    clean = make_account(username="alice", opening=100)
    broken = make_account(username="bob", opening=100)
    add_row(broken, 100, 99)
    add_row(broken, 100, 99)
    add_run(broken, ok=5)
    add_row(clean, 100, 99)
    settle(clean, 99)

    assert audit_account(account=clean).verdict == "OK"
    assert audit_account(account=clean).client is None


def test_audit_accounts_in_id_order_and_by_username(make_account):
    alice = make_account(username="alice")
    bob = make_account(username="bob")
    orphan = make_account(username=None)

    everyone = audit_accounts()
    only_bob = audit_accounts(username="bob")

    assert [(a.account_id, a.username) for a in everyone] == [
        (alice.pk, "alice"),
        (bob.pk, "bob"),
        (orphan.pk, ""),
    ]
    assert [a.account_id for a in only_bob] == [bob.pk]
    assert audit_accounts(username="nobody") == []


# The strategies each account of a mixed ledger records: one, several, none.
LEDGER_STRATEGIES = [
    [Strategy.NAIVE],
    [Strategy.NAIVE, Strategy.LOCKING],
    [Strategy.ATOMIC_UPDATE, Strategy.OPTIMISTIC, Strategy.SERIALIZABLE],
    [Strategy.LOCKING],
    [],
]


def random_ledger(make_account, add_row, add_run, *, seed: int) -> list[Account]:
    """Accounts with random withdrawals, some of which read a stale balance or go below the minimum."""
    rng = random.Random(seed)
    accounts = []
    for index, strategies in enumerate(LEDGER_STRATEGIES):
        account = make_account(username=f"user{index}", opening=100, minimum=rng.choice([0, 80]))
        balance = 100
        for _ in range(rng.randint(20, 40) if strategies else 0):
            amount = rng.randint(1, 3)
            read = balance + amount if rng.random() < 0.2 else balance  # a stale read: a lost update
            add_row(account, read, read - amount, strategy=rng.choice(strategies))
            balance = read - amount
        settle(account, balance)
        if rng.random() < 0.7:
            add_run(account, ok=rng.randint(0, 40), refused=rng.randint(0, 3), indeterminate=1)
        accounts.append(account)
    accounts.append(make_account(username=None, opening=10, current=4, minimum=5))
    return accounts


def figures_row_by_row(account: Account) -> dict:
    """What the audit must find, counted in Python from every ledger row of the account."""
    rows = list(
        Transaction.objects.filter(holder=account).values_list(
            "strategy", "amount", "balance_before", "balance"
        )
    )

    def lost_updates(subset: list) -> int:
        return len(subset) - len({read for _, _, read, _ in subset})

    by_strategy = [
        StrategyAudit(
            strategy,
            ledger_rows=len(subset),
            withdrawn=sum(amount for _, amount, _, _ in subset),
            lost_updates=lost_updates(subset),
            overdrafts=sum(written < account.minimum for _, _, _, written in subset),
        )
        for strategy in sorted({row[0] for row in rows})
        for subset in [[row for row in rows if row[0] == strategy]]
    ]
    return {
        "ledger_rows": len(rows),
        "withdrawn": sum(amount for _, amount, _, _ in rows),
        "lost_updates": lost_updates(rows),
        "distinct_balances": len({written for _, _, _, written in rows}),
        "overdrafts": sum(written < account.minimum for _, _, _, written in rows),
        "by_strategy": by_strategy,
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_accounts_figures_match_a_count_row_by_row(make_account, add_row, add_run, seed):
    accounts = random_ledger(make_account, add_row, add_run, seed=seed)

    audits = audit_accounts()

    assert [audit.account_id for audit in audits] == [account.pk for account in accounts]
    for account, audit in zip(accounts, audits, strict=True):
        found = {name: getattr(audit, name) for name in figures_row_by_row(account)}
        assert found == figures_row_by_row(account), f"account {account.pk}"
        assert audit.duplicate_balances == audit.ledger_rows - audit.distinct_balances
        # The audit of all accounts and the audit of one say the same, examples included.
        assert audit == audit_account(account=account)


def test_a_one_strategy_account_has_its_totals_as_its_breakdown(make_account, add_row):
    account = make_account(opening=10, minimum=5)
    add_row(account, 10, 8, strategy=Strategy.OPTIMISTIC)
    add_row(account, 10, 8, strategy=Strategy.OPTIMISTIC)
    add_row(account, 8, 4, strategy=Strategy.OPTIMISTIC)
    settle(account, 4)

    audit = audit_account(account=account)

    assert audit.by_strategy == [
        StrategyAudit(Strategy.OPTIMISTIC, ledger_rows=3, withdrawn=8, lost_updates=1, overdrafts=1)
    ]


def test_a_breakdown_counts_lost_updates_and_overdrafts_only_where_an_account_has_them(make_account, add_row):
    # Two accounts with several strategies in one audit: one clean, one with both anomalies.
    clean = make_account(username="alice", opening=10)
    add_row(clean, 10, 9, strategy=Strategy.NAIVE)
    add_row(clean, 9, 8, strategy=Strategy.LOCKING)
    settle(clean, 8)
    broken = make_account(username="bob", opening=10, minimum=8)
    add_row(broken, 10, 9, strategy=Strategy.NAIVE)
    add_row(broken, 10, 9, strategy=Strategy.NAIVE)
    add_row(broken, 9, 7, strategy=Strategy.LOCKING)
    settle(broken, 7)

    clean_audit, broken_audit = audit_accounts()

    assert clean_audit.by_strategy == [
        StrategyAudit(Strategy.LOCKING, ledger_rows=1, withdrawn=1, lost_updates=0, overdrafts=0),
        StrategyAudit(Strategy.NAIVE, ledger_rows=1, withdrawn=1, lost_updates=0, overdrafts=0),
    ]
    assert broken_audit.by_strategy == [
        StrategyAudit(Strategy.LOCKING, ledger_rows=1, withdrawn=2, lost_updates=0, overdrafts=1),
        StrategyAudit(Strategy.NAIVE, ledger_rows=2, withdrawn=2, lost_updates=1, overdrafts=0),
    ]


@pytest.mark.parametrize(
    ("strategies", "queries"),
    [([Strategy.LOCKING], 3), ([Strategy.NAIVE, Strategy.LOCKING], 4)],
    ids=["one strategy an account", "several strategies an account"],
)
def test_the_audit_sends_as_many_queries_for_many_accounts_as_for_one(
    make_account, add_row, add_run, strategies, queries
):
    # The accounts, the ledger's totals, the client runs (and the breakdown of the accounts with
    # several strategies), each one query for all accounts. Only anomalies' examples add more.
    def audit_queries(*, accounts: int) -> int:
        for _ in range(accounts):
            account = make_account(username=f"user{Account.objects.count()}", opening=100)
            for index, strategy in enumerate(strategies * 2):
                add_row(account, 100 - index, 99 - index, strategy=strategy)
            add_run(account, ok=len(strategies) * 2)
            settle(account, 100 - len(strategies) * 2)
        with CaptureQueriesContext(connection) as captured:
            audits = audit_accounts()
        assert [audit.verdict for audit in audits] == ["OK"] * Account.objects.count()
        return len(captured)

    assert audit_queries(accounts=1) == audit_queries(accounts=9) == queries
