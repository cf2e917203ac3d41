"""One row per run and account (was ClientRun, and its copy labreport.LabRun): what the client
saw, refused for the 4xx answers (was failed), and what the report page keeps, the audit when
the run ended; a reset no longer deletes runs, it takes them out of the checker's count."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_ledger_indexes_cover_ids")]

    operations = [
        migrations.RenameModel("ClientRun", "Run"),
        migrations.RenameField("run", "failed", "refused"),
        migrations.AlterField(
            "run",
            "account",
            models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="runs", to="accounts.account"
            ),
        ),
        migrations.AddField(
            "run", "token", models.CharField(db_index=True, default="", max_length=64), preserve_default=False
        ),
        migrations.AddField("run", "concurrency", models.IntegerField(default=0), preserve_default=False),
        migrations.AddField("run", "race_window", models.BooleanField(default=False)),
        migrations.AddField("run", "requests_per_second", models.FloatField(null=True)),
        migrations.AddField(
            "run",
            "since_reset",
            models.BooleanField(
                default=True,
                help_text="Its withdrawals are in the account's ledger: until the account's next reset, "
                "the checker reconciles the ledger against it.",
            ),
        ),
        migrations.AddField("run", "audit", models.JSONField(null=True)),
        migrations.AddField(
            "run",
            "lost",
            models.IntegerField(help_text="Lost withdrawals in the audit at the end of the run.", null=True),
        ),
        migrations.AddField("run", "verdict", models.TextField(blank=True)),
        migrations.AlterModelOptions("run", {"ordering": ["-started_at", "-id"]}),
        migrations.AddIndex(
            "run", models.Index(fields=["account", "since_reset"], name="run_account_since_reset")
        ),
    ]
