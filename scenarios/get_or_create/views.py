from races.views import FormPostView, text
from scenarios.get_or_create.forms import SyncRequest
from scenarios.get_or_create.syncs import SyncedRepository, sync_repository


class SyncView(FormPostView):
    """POST: the row of the repository ``full_name``, found or created; 200 with its id.

    The naive strategy's ``MultipleObjectsReturned`` is not caught: once a race has left two rows
    of a name, every naive sync of it answers 500, as readthedocs.org's did. That is the bug.
    """

    form = SyncRequest
    service = staticmethod(sync_repository)

    def answered(self, form: SyncRequest, synced: SyncedRepository):
        action = "created" if synced.created else "found"
        return text(f"Repository {form.full_name} {action}: row {synced.repository_id}.")
