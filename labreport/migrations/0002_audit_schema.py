"""The audits kept with earlier lab runs, in the account-audit/1 vocabulary (docs/json-schema.json):
a ``schema``, and the client's 4xx answers counted as ``refused`` (they were ``failed``), so
the run page reads every run alike. The names are written out: a migration must not follow the code.
"""

from django.db import migrations

SCHEMA = "account-audit/1"
BATCH = 500


def _rewrite(apps, change) -> None:
    LabRun = apps.get_model("labreport", "LabRun")
    changed = []
    for run in LabRun.objects.only("id", "audit").iterator(chunk_size=BATCH):
        if change(run.audit):
            changed.append(run)
    LabRun.objects.bulk_update(changed, ["audit"], batch_size=BATCH)


def _to_version_1(audit: dict) -> bool:
    if audit.get("schema") == SCHEMA:
        return False
    client = audit.get("client")
    if client is not None and "failed" in client:
        client["refused"] = client.pop("failed")
    audit["schema"] = SCHEMA
    return True


def _to_unversioned(audit: dict) -> bool:
    if audit.pop("schema", None) is None:
        return False
    client = audit.get("client")
    if client is not None and "refused" in client:
        client["failed"] = client.pop("refused")
    return True


def forwards(apps, schema_editor) -> None:
    _rewrite(apps, _to_version_1)


def backwards(apps, schema_editor) -> None:
    _rewrite(apps, _to_unversioned)


class Migration(migrations.Migration):
    dependencies = [("labreport", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
