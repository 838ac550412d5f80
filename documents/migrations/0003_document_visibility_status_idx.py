# What a user may read is "own OR shared" (and "ready" for search): with
# document_owner_status_idx this index makes it a BitmapOr of two index scans instead of
# a scan of the whole table.
#
# Not CREATE INDEX CONCURRENTLY: the replicas that wait for the migration lock
# (deploy/migrate_locked.py) hold a snapshot while they wait, and a concurrent build
# waits for every such snapshot, so the two would deadlock. One row per document
# builds in milliseconds.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0002_documents"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="document",
            index=models.Index(
                fields=["visibility", "status"], name="document_visibility_status_idx"
            ),
        ),
    ]
