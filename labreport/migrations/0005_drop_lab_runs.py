"""The lab runs' old table, now copied into accounts.Run (0004), and the recorded requests'
link to it, which their link to the copy replaces."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("labreport", "0004_copy_lab_runs")]

    operations = [
        migrations.RemoveField("recordedrequest", "run"),
        migrations.DeleteModel("LabRun"),
        migrations.RenameField("recordedrequest", "kept_run", "run"),
        migrations.AlterField(
            "recordedrequest",
            "run",
            models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="recorded_requests",
                to="accounts.run",
            ),
        ),
    ]
