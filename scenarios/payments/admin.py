from django.contrib import admin

from scenarios.payments.models import IdempotencyKey, Invoice, Payment


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ["id", "number", "amount", "paid_at"]
    search_fields = ["number"]


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ["id", "invoice", "user", "idempotency_key", "amount", "strategy", "request_started_at"]
    list_filter = ["strategy"]
    list_select_related = ["invoice", "user"]
    search_fields = ["idempotency_key"]


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(admin.ModelAdmin):
    list_display = ["id", "key", "user", "invoice_number", "payment", "refusal", "created_at"]
    list_select_related = ["user", "payment"]
    search_fields = ["key", "invoice_number"]
