"""The transfer checker: money is conserved, proved wallet by wallet from the transfer rows.

Each wallet's balance must be its opening balance, plus what its recorded transfers brought in,
minus what they took out. Transfers only move money between wallets, so when every wallet
agrees, the total is the opening total. A deadlock leaves no row to find: the database rolls its
victim back whole, and the naive strategy's 500 is counted from the answers.
"""

from collections.abc import Collection
from dataclasses import dataclass
from typing import NamedTuple

from django.db.models import Count, Q, QuerySet, Sum

from scenarios.audit import ScenarioAudit, violated
from scenarios.transfers.models import Transfer, Wallet

INVARIANT = "each wallet's balance is its opening balance plus its transfers in minus its transfers out"
UNEXPLAINED = "balances the transfers do not explain"


def audit_wallets(*, names: Collection[str] | None = None) -> ScenarioAudit:
    """Add up each wallet's transfers out and in (one statement each) and compare the result
    with its balance."""
    wallets = Wallet.objects.all() if names is None else Wallet.objects.filter(name__in=names)
    sent = _moved(Transfer.objects.filter(source__in=wallets), by="source")
    received = _moved(Transfer.objects.filter(destination__in=wallets), by="destination")
    ledgers = [
        _Ledger(
            pk=pk,
            name=name,
            opening=opening,
            balance=balance,
            sent=sent.get(pk, _Moved()),
            received=received.get(pk, _Moved()),
        )
        for pk, name, opening, balance in wallets.order_by("pk").values_list(
            "pk", "name", "opening_balance", "balance"
        )
    ]
    unexplained = [ledger for ledger in ledgers if ledger.difference]
    opening_total = sum(ledger.opening for ledger in ledgers)
    balance_total = sum(ledger.balance for ledger in ledgers)
    figures = [
        ("wallets", len(ledgers)),
        ("transfers", Transfer.objects.filter(Q(source__in=wallets) | Q(destination__in=wallets)).count()),
        ("money at opening", opening_total),
        ("money now", balance_total),
        ("money created or destroyed", balance_total - opening_total),
        ("wallets the transfers do not explain", len(unexplained)),
    ]
    violations = violated(
        UNEXPLAINED,
        broken=unexplained,
        count=len(unexplained),
        explanation="wallets whose balance is not their opening balance plus their recorded transfers "
        "in minus their transfers out: money moved without its transfer row, or a transfer recorded "
        "without its money",
        worst=lambda ledger: (abs(ledger.difference), -ledger.pk),
        example=_Ledger.example,
    )
    return ScenarioAudit(scenario="transfer", invariant=INVARIANT, figures=figures, violations=violations)


class _Moved(NamedTuple):
    """How many transfers, and how much money they moved."""

    transfers: int = 0
    amount: int = 0


def _moved(transfers: QuerySet, *, by: str) -> dict[int, _Moved]:
    """What ``transfers`` moved per wallet, ``by`` their source or their destination."""
    counted = transfers.values(by).annotate(transfers=Count("pk"), amount=Sum("amount")).order_by()
    return {row[by]: _Moved(row["transfers"], row["amount"]) for row in counted}


@dataclass(frozen=True, kw_only=True)
class _Ledger:
    """A wallet's balance beside what its transfers say it should be."""

    pk: int
    name: str
    opening: int
    balance: int
    sent: _Moved
    received: _Moved

    @property
    def expected(self) -> int:
        return self.opening + self.received.amount - self.sent.amount

    @property
    def difference(self) -> int:
        return self.balance - self.expected

    def example(self) -> dict:
        return {
            "wallet": self.name,
            "opening_balance": self.opening,
            "transfers_in": self.received.transfers,
            "received": self.received.amount,
            "transfers_out": self.sent.transfers,
            "sent": self.sent.amount,
            "expected_balance": self.expected,
            "balance": self.balance,
            "difference": self.difference,
        }
