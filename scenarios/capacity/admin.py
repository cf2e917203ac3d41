from django.contrib import admin

from scenarios.capacity.models import Activity, Participant


@admin.register(Activity)
class ActivityAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "max_participants", "places_left"]
    search_fields = ["name"]


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ["id", "activity", "user", "strategy", "request_started_at"]
    list_filter = ["strategy"]
    list_select_related = ["activity", "user"]
