from django_tasks import task

from documents.services import document_ingest


@task()
def ingest_document(document_id: int) -> str:
    return document_ingest(document_id=document_id)
