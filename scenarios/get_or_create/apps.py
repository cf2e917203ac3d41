from django.apps import AppConfig


class GetOrCreateConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "scenarios.get_or_create"
    label = "get_or_create"
    verbose_name = "Scenario: get_or_create without a unique constraint"
