# A covering index for search's term statement (documents.search._terms_sql): a term's
# chunk counts per document read from the index alone. Built CONCURRENTLY (not atomic):
# writes to the table go on meanwhile.

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("documents", "0007_chunk_terms"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="documentterm",
            index=models.Index(
                fields=["term"], include=("document", "chunks"), name="documentterm_term_cover_idx"
            ),
        ),
    ]
