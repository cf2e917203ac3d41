from django.contrib import admin

from accounts.models import Account, ClientRun, Transaction


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "opening", "current", "minimum", "version"]
    search_fields = ["user__username"]


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
    list_display = ["id", "holder", "strategy", "amount", "balance_before", "balance", "request_started_at"]
    list_filter = ["strategy"]
    list_select_related = ["holder__user"]


@admin.register(ClientRun)
class ClientRunAdmin(admin.ModelAdmin):
    list_display = ["id", "account", "driver", "strategy", "requests", "ok", "failed", "indeterminate"]
    list_filter = ["driver", "strategy"]
