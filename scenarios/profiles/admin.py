from django.contrib import admin

from scenarios.profiles.models import Profile, ProfileEdit


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["id", "handle", "display_name", "city", "version"]
    search_fields = ["handle"]


@admin.register(ProfileEdit)
class ProfileEditAdmin(admin.ModelAdmin):
    list_display = ["id", "profile", "field", "value", "strategy", "request_started_at"]
    list_filter = ["strategy", "field"]
    list_select_related = ["profile"]
