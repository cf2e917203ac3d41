from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "scenarios.profiles"
    label = "profiles"
    verbose_name = "Scenario: profile clobber, full-row save()"
