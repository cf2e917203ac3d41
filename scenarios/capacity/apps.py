from django.apps import AppConfig


class CapacityConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "scenarios.capacity"
    label = "capacity"
    verbose_name = "Scenario: capacity, count then insert"
