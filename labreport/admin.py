from django.contrib import admin

from labreport.models import LabRun


@admin.register(LabRun)
class LabRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "started_at",
        "account",
        "driver",
        "strategy",
        "concurrency",
        "requests",
        "lost",
        "verdict",
    ]
    list_filter = ["driver", "strategy"]
    exclude = ["audit"]
