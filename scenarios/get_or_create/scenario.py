from scenarios.definition import Scenario
from scenarios.get_or_create import provisioning
from scenarios.get_or_create.audit import audit_repositories
from scenarios.get_or_create.models import RemoteRepository, UniqueRemoteRepository
from scenarios.get_or_create.syncs import Strategy

GET_OR_CREATE = Scenario(
    name="get_or_create",
    title="get_or_create without a unique constraint",
    bug="https://github.com/readthedocs/readthedocs.org/issues/7727",
    path="/scenarios/get_or_create/sync/",
    forms=({"full_name": provisioning.LAB_REPOSITORY},),
    strategies=tuple(Strategy),
    # The get() of either table: naive and serializable read the first, unique_constraint the second.
    park_point=f"{RemoteRepository._meta.db_table},{UniqueRemoteRepository._meta.db_table}",
    # All K miss the get() and all K insert: K-1 rows beyond the first.
    naive_violations=lambda parties, audit: parties - 1,
    recorded="every synced repository row",
    seed=provisioning.seed_repositories,
    is_seeded=provisioning.is_seeded,
    reset=provisioning.reset_repositories,
    audit=audit_repositories,
)
