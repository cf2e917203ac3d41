from django.contrib import admin

from scenarios.get_or_create.models import RemoteRepository, UniqueRemoteRepository


@admin.register(RemoteRepository, UniqueRemoteRepository)
class RemoteRepositoryAdmin(admin.ModelAdmin):
    list_display = ["id", "full_name", "synced_by", "strategy", "request_started_at"]
    list_filter = ["strategy"]
    search_fields = ["full_name"]
    list_select_related = ["synced_by"]
