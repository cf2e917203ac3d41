"""The get_or_create checker: one row per repository name in each table, proved from the rows."""

from django.db.models import Count, Min

from scenarios.audit import ScenarioAudit, violated
from scenarios.get_or_create.models import RemoteRepository, RemoteRepositoryBase, UniqueRemoteRepository

INVARIANT = "one row per repository name"
DUPLICATES = "duplicate repository rows"
# The tables in the order examples are taken from: the one the bug can break first.
MODELS: tuple[type[RemoteRepositoryBase], ...] = (RemoteRepository, UniqueRemoteRepository)


def audit_repositories() -> ScenarioAudit:
    """Count each name's rows per table (one statement a table), then fetch examples only for
    the names with more than one."""
    names = [
        (model, full_name, rows)
        for model in MODELS
        for full_name, rows, _ in model.objects.values_list("full_name")
        .annotate(rows=Count("pk"), first=Min("pk"))
        .order_by("first")
    ]
    duplicated = [(model, full_name, rows) for model, full_name, rows in names if rows > 1]
    duplicates = sum(rows - 1 for *_, rows in duplicated)
    figures = [
        ("repository names (per table)", len(names)),
        ("repository rows", sum(rows for *_, rows in names)),
        ("names with duplicates", len(duplicated)),
        ("rows beyond one per name", duplicates),
    ]
    violations = violated(
        DUPLICATES,
        broken=duplicated,
        count=duplicates,
        explanation="rows of a repository name beyond its first: concurrent syncs all missed the get() "
        "before any of them inserted, and every later get() of the name fails",
        worst=lambda name: name[2],
        example=_example,
    )
    return ScenarioAudit(
        scenario="get_or_create", invariant=INVARIANT, figures=figures, violations=violations
    )


def _example(name: tuple[type[RemoteRepositoryBase], str, int]) -> dict:
    model, full_name, rows = name
    beyond = model.objects.filter(full_name=full_name).order_by("pk").values_list("pk", flat=True)[1:6]
    return {
        "table": model._meta.db_table,
        "full_name": full_name,
        "rows": rows,
        "row_ids_beyond_first": list(beyond),
    }
