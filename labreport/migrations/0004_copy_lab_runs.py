"""The lab runs move into accounts.Run, the one row per run: a kept lab run whose twin the
checker still counts (the ClientRun it copied, since the account's last reset) fills that row;
an earlier one becomes a run out of the checker's count. Its recorded requests follow it; in
reverse, every run with an audit is a lab run again, and what was only a lab run goes. The
names are written out: a migration must not follow the code. Data only: PostgreSQL cannot alter
a table with the copy's deferred checks pending in the same transaction."""

from django.db import migrations

BATCH = 500
# What the client saw: a kept lab run and its twin the checker still counts share these.
CLIENT = (
    "account_id",
    "driver",
    "strategy",
    "amount",
    "requests",
    "ok",
    "refused",
    "indeterminate",
    "started_at",
)
# What only the kept lab run had.
KEPT = ("token", "concurrency", "race_window", "requests_per_second", "audit", "lost", "verdict")


def _move_lab_runs(apps, schema_editor) -> None:
    LabRun = apps.get_model("labreport", "LabRun")
    Run = apps.get_model("accounts", "Run")
    RecordedRequest = apps.get_model("labreport", "RecordedRequest")
    for lab_run in LabRun.objects.order_by("id").iterator(chunk_size=BATCH):
        client = {name: getattr(lab_run, name) for name in CLIENT}
        kept = {name: getattr(lab_run, name) for name in KEPT}
        # Runs since the last reset: one row, counted and kept; earlier ones: kept only.
        twin = Run.objects.filter(since_reset=True, audit__isnull=True, **client).order_by("id").first()
        if twin is None:
            run = Run.objects.create(since_reset=False, finished_at=lab_run.finished_at, **client, **kept)
        else:
            Run.objects.filter(pk=twin.pk).update(**kept)
            run = twin
        RecordedRequest.objects.filter(run_id=lab_run.pk).update(kept_run=run)


def _restore_lab_runs(apps, schema_editor) -> None:
    LabRun = apps.get_model("labreport", "LabRun")
    Run = apps.get_model("accounts", "Run")
    RecordedRequest = apps.get_model("labreport", "RecordedRequest")
    for run in Run.objects.filter(audit__isnull=False).order_by("id").iterator(chunk_size=BATCH):
        lab_run = LabRun.objects.create(
            finished_at=run.finished_at, **{name: getattr(run, name) for name in CLIENT + KEPT}
        )
        RecordedRequest.objects.filter(kept_run_id=run.pk).update(run=lab_run)
    RecordedRequest.objects.update(kept_run=None)
    # What the checker no longer counted was only ever a lab run.
    Run.objects.filter(since_reset=False).delete()


class Migration(migrations.Migration):
    dependencies = [("labreport", "0003_runs_kept_by_accounts")]

    operations = [migrations.RunPython(_move_lab_runs, _restore_lab_runs)]
