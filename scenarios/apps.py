from django.apps import AppConfig


class ScenariosConfig(AppConfig):
    """The catalogue of scenarios and its commands; each scenario is an app of its own below."""

    name = "scenarios"
    verbose_name = "Race scenarios"
