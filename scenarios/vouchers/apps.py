from django.apps import AppConfig


class VouchersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "scenarios.vouchers"
    label = "vouchers"
    verbose_name = "Scenario: single-use vouchers"
