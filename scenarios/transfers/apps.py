from django.apps import AppConfig


class TransfersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "scenarios.transfers"
    label = "transfers"
    verbose_name = "Scenario: transfers that lock in request order"
