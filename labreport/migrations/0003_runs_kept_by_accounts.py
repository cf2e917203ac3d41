"""Where each recorded request's run will be in accounts.Run, the one row per run (filled by
0004, which copies the lab runs there)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("labreport", "0002_audit_schema"), ("accounts", "0003_one_run_row")]

    operations = [
        migrations.AddField(
            "recordedrequest",
            "kept_run",
            models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="accounts.run"
            ),
        ),
    ]
