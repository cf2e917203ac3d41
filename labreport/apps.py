from django.apps import AppConfig


class LabReportConfig(AppConfig):
    name = "labreport"
    verbose_name = "Lab report"
