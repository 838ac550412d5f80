# Chunks carry their document's title, and the search vector indexes it with the
# content (issue 20). PostgreSQL cannot change a generated column's expression, so the
# column and its GIN index are dropped and added again (recomputed from title and
# content; the title is empty for existing chunks until `manage.py reindex` fills it).

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations, models


def _search_vector(*columns):
    return models.GeneratedField(
        db_persist=True,
        expression=django.contrib.postgres.search.SearchVector(*columns, config="english"),
        output_field=django.contrib.postgres.search.SearchVectorField(),
    )


def _gin():
    return django.contrib.postgres.indexes.GinIndex(
        fields=["search_vector"], name="chunk_search_vector_gin"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0004_document_terms"),
    ]

    operations = [
        migrations.AddField(
            model_name="chunk",
            name="title",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="chunk",
                    name="search_vector",
                    field=_search_vector("title", "content"),
                ),
            ],
            database_operations=[
                migrations.RemoveIndex(model_name="chunk", name="chunk_search_vector_gin"),
                migrations.RemoveField(model_name="chunk", name="search_vector"),
                migrations.AddField(
                    model_name="chunk",
                    name="search_vector",
                    field=_search_vector("title", "content"),
                ),
                migrations.AddIndex(model_name="chunk", index=_gin()),
            ],
        ),
    ]
