# Term statistics per document for the BM25 text leg (documents.search). Existing
# documents are counted from their stored chunks.

import django.db.models.deletion
from django.db import migrations, models


def count_existing(apps, schema_editor):
    Document = apps.get_model("documents", "Document")
    with schema_editor.connection.cursor() as cursor:
        for document_id in Document.objects.values_list("pk", flat=True).iterator():
            cursor.execute(
                "INSERT INTO documents_documentterm (document_id, term, chunks) "
                "SELECT %s, word, ndoc FROM ts_stat(%s)",
                [
                    document_id,
                    "SELECT search_vector FROM documents_chunk "
                    f"WHERE document_id = {int(document_id)}",
                ],
            )


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0003_document_visibility_status_idx"),
    ]

    operations = [
        migrations.CreateModel(
            name="DocumentTerm",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("term", models.TextField()),
                ("chunks", models.PositiveIntegerField()),
                (
                    "document",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="terms",
                        to="documents.document",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["document"], name="documentterm_document_idx")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("term", "document"), name="documentterm_term_doc_uniq"
                    )
                ],
            },
        ),
        migrations.RunPython(count_existing, migrations.RunPython.noop),
    ]
