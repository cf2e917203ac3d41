from django.contrib import admin

from scenarios.signups.models import Signup


@admin.register(Signup)
class SignupAdmin(admin.ModelAdmin):
    list_display = ["id", "email", "user", "strategy", "request_started_at"]
    list_filter = ["strategy"]
    list_select_related = ["user"]
    search_fields = ["email"]
