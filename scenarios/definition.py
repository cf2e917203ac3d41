"""What the lab needs to know of a scenario: where it lives, what it sends, where race mode holds
it, and how its data is seeded, reset and checked. Each scenario's package defines its own
(``scenarios/<package>/scenario.py``); ``scenarios/catalogue.py`` lists them."""

from collections.abc import Callable
from dataclasses import dataclass

from scenarios.audit import ScenarioAudit


class ProvisioningError(ValueError):
    """A scenario's data could not be seeded as asked; nothing was changed. The message says why."""


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    title: str
    # The published bug it reproduces.
    bug: str
    # The endpoint: sent ``method`` with ?strategy=NAME and a form, request i of a run the form
    # ``forms[i % len(forms)]``: one form for most scenarios, two for a race between different
    # requests (profile: two PATCHes of different fields).
    path: str
    forms: tuple[dict[str, str], ...] = ()
    method: str = "POST"
    # Where the forms depend on how many requests race (transfer: a ring of as many wallets as
    # requests, up to its five, each paying the next), the forms for that concurrency; None:
    # ``forms`` always.
    forms_at: Callable[[int], tuple[dict[str, str], ...]] | None = None
    # The databases on which the naive strategy's race breaks the invariant at all (transfer:
    # SQLite's transactions take the write lock at BEGIN, so they cannot deadlock).
    reproduces_on: tuple[str, ...] = ("sqlite", "postgresql", "mysql")
    # The most requests race mode can hold together and still predict (transfer: one wallet of
    # its ring each); None: no limit.
    race_parties_max: int | None = None
    strategies: tuple[str, ...]  # the naive one (the bug) first
    # Where race mode holds a request (racelab.racewindow.park_points): right after the read it decides on.
    park_point: str
    # Strategies that never send the park point's statement (they write without that read), so
    # race mode holds none of their requests.
    never_held: tuple[str, ...] = ()
    # Strategies that send it only to word a refusal (the withdrawal's conditional UPDATE reads
    # the balance it could not debit): race mode holds their losers, never their winners.
    held_when_refused: tuple[str, ...] = ()
    # What K naive requests held together break, given the audit of the data they ran on (its
    # figures say how much there was to break): the checker's count of broken rows plus the 5xx
    # answers, since every scenario promises the loser of a race a 4xx with a reason.
    naive_violations: Callable[[int, ScenarioAudit], int]
    # What ``seed_scenario --limit`` sizes; None: the scenario has nothing to size.
    limit_help: str | None = None
    # What a reset deletes, said to the user before it does.
    recorded: str
    # Create the scenario's data or put it back to the start: ``seed(limit=N or None)`` where it
    # has a size (None: the default), ``seed()`` where it has none.
    seed: Callable[..., str]
    is_seeded: Callable[[], bool]
    reset: Callable[[], str]
    audit: Callable[[], ScenarioAudit]

    def always_held(self, strategy: str | None) -> bool:
        """Whether every request of the strategy reaches the park point, so that an armed window
        which held none of them says the server ignored it."""
        return strategy not in self.never_held and strategy not in self.held_when_refused

    def forms_for(self, *, concurrency: int) -> tuple[dict[str, str], ...]:
        return self.forms if self.forms_at is None else self.forms_at(concurrency)

    def seed_command(self, *, size: int) -> tuple[str, ...]:
        """The ``manage.py`` arguments that seed it, at ``size`` where it has a size."""
        sized = ("--limit", str(size)) if self.limit_help is not None else ()
        return ("seed_scenario", self.name, *sized)
