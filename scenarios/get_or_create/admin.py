from races.admin import register_admin
from scenarios.get_or_create.models import RemoteRepository, UniqueRemoteRepository

for model in (RemoteRepository, UniqueRemoteRepository):
    register_admin(model, "full_name", "synced_by", search=("full_name",))
