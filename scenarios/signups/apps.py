from django.apps import AppConfig


class SignupsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "scenarios.signups"
    label = "signups"
    verbose_name = "Scenario: unique signup, check then insert"
