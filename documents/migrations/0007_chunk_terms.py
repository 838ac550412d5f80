# Postings of the full-text leg (documents.models.ChunkTerm): each chunk's lexemes with
# their BM25 weight without the idf, read per term in weight order by documents.search.
#
# Without downtime: the table is created empty (the running code does not read it), then
# filled one document per transaction, outside one long migration transaction, so
# ingestion and search go on meanwhile. A document ingested by the old code while this
# runs gets no postings: `manage.py rebuild_terms --missing` after the deploy fills those
# (bench/README, search.py).

import django.db.models.deletion
from django.db import migrations, models, transaction

# documents.models.postings_sql as of this migration (k1 1.2, b 0.75, average length 400).
POSTINGS = """
INSERT INTO documents_chunkterm (chunk_id, term, document_id, weight)
SELECT c.id, t.lexeme, c.document_id,
       (tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * c.token_count / 400.0)))
FROM documents_chunk c
CROSS JOIN LATERAL unnest(c.search_vector) t
CROSS JOIN LATERAL (SELECT COALESCE(array_length(t.positions, 1), 1) AS tf) f
WHERE c.document_id = %s
  AND NOT EXISTS (SELECT 1 FROM documents_chunkterm ct WHERE ct.chunk_id = c.id)
"""


def fill_postings(apps, schema_editor):
    Document = apps.get_model("documents", "Document")
    ids = list(Document.objects.order_by("pk").values_list("pk", flat=True))
    for document_id in ids:
        with transaction.atomic(using=schema_editor.connection.alias):
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(POSTINGS, [document_id])


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("documents", "0006_content_blocks"),
    ]

    operations = [
        migrations.CreateModel(
            name="ChunkTerm",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "chunk_id",
                        "term",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("term", models.TextField()),
                ("document_id", models.BigIntegerField()),
                ("weight", models.FloatField()),
                (
                    "chunk",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="terms",
                        to="documents.chunk",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["term", "-weight"],
                        include=("document_id", "chunk"),
                        name="chunkterm_term_weight_idx",
                    )
                ],
            },
        ),
        migrations.RunPython(fill_postings, migrations.RunPython.noop),
    ]
