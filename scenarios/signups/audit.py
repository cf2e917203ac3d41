"""The signup checker: one signup per address, compared lower-cased, proved from the signup rows.

The unique index only compares the stored text, which the service lower-cases: a row written
around it (the admin, a shell, a data migration) can still sign an address up twice in two
cases on PostgreSQL and SQLite (on SQLite only in ASCII: its lower() folds nothing else).
MariaDB's case-insensitive collation refuses those rows itself. The naive race cannot break
this; it breaks the other half of the promise, a 4xx for the loser, and its 500s are counted
from the answers, not from the rows (ScenarioRun.violations).
"""

from django.db.models import Count, Min
from django.db.models.functions import Lower

from scenarios.audit import ScenarioAudit, violated
from scenarios.signups.models import Signup

INVARIANT = "one signup per email address, compared lower-cased"
DUPLICATES = "addresses signed up more than once"


def audit_signups() -> ScenarioAudit:
    """Count the signups of each lower-cased address (one statement), then fetch examples only
    for the addresses signed up more than once."""
    counted = (
        Signup.objects.annotate(address=Lower("email"))
        .values("address")
        .annotate(signups=Count("pk"), first_id=Min("pk"))
        .values_list("first_id", "address", "signups")
    )
    rows = list(counted.order_by("first_id"))
    repeated = [row for row in rows if row[2] > 1]
    beyond = sum(signups - 1 for *_, signups in repeated)
    figures = [
        ("signups", sum(signups for *_, signups in rows)),
        ("addresses", len(rows)),
        ("addresses signed up more than once", len(repeated)),
        ("signups beyond one per address", beyond),
    ]
    violations = violated(
        DUPLICATES,
        broken=repeated,
        count=beyond,
        explanation="signups recorded beyond the first for one address: rows that differ only in case, "
        "which the unique index on the stored text let through",
        worst=lambda row: (row[2], -row[0]),
        example=_example,
    )
    return ScenarioAudit(scenario="signup", invariant=INVARIANT, figures=figures, violations=violations)


def _example(row: tuple[int, str, int]) -> dict:
    _, address, signups = row
    same = Signup.objects.annotate(address=Lower("email")).filter(address=address).order_by("pk")
    emails = list(same.values_list("pk", "email")[:6])
    return {
        "address": address,
        "signups": signups,
        "emails": [email for _, email in emails],
        "signup_ids_beyond_first": [pk for pk, _ in emails[1:]],
    }
