from django.contrib import admin

from scenarios.transfers.models import Transfer, Wallet


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "balance", "opening_balance"]
    search_fields = ["name"]


@admin.register(Transfer)
class TransferAdmin(admin.ModelAdmin):
    list_display = ["id", "source", "destination", "amount", "strategy", "request_started_at"]
    list_filter = ["strategy"]
    list_select_related = ["source", "destination"]
