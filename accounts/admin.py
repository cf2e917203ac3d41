from django.contrib import admin

from accounts.models import Account, Run, Transaction


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "opening", "current", "minimum", "version"]
    search_fields = ["user__username"]


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
    list_display = ["id", "holder", "strategy", "amount", "balance_before", "balance", "request_started_at"]
    list_filter = ["strategy"]
    list_select_related = ["holder__user"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "started_at",
        "account",
        "driver",
        "strategy",
        "concurrency",
        "requests",
        "ok",
        "refused",
        "indeterminate",
        "lost",
        "verdict",
        "since_reset",
    ]
    list_filter = ["driver", "strategy", "since_reset"]
    exclude = ["audit"]
