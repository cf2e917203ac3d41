from django.contrib import admin

from scenarios.vouchers.models import Voucher, VoucherUsage


@admin.register(Voucher)
class VoucherAdmin(admin.ModelAdmin):
    list_display = ["id", "code", "limit", "remaining"]
    search_fields = ["code"]


@admin.register(VoucherUsage)
class VoucherUsageAdmin(admin.ModelAdmin):
    list_display = ["id", "voucher", "user", "slot", "strategy", "request_started_at"]
    list_filter = ["strategy"]
    list_select_related = ["voucher", "user"]
