from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "scenarios.payments"
    label = "payments"
    verbose_name = "Scenario: double-submitted payments"
