import pytest

from documents.models import Document
from documents.tests.conftest import MANUAL_MD, upload_file

pytestmark = pytest.mark.django_db


def _post(client, *files, **data):
    return client.post("/api/documents", {"files": list(files), **data})


def test_it_stores_the_upload_under_a_uuid_name_and_queues_it(owner_client, owner, media):
    response = _post(owner_client, upload_file("Maintenance Guide.md", MANUAL_MD))
    assert response.status_code == 201
    [result] = response.json()["results"]
    assert result["created"] is True
    assert result["name"] == "Maintenance Guide.md"
    assert result["status"] == "queued"
    assert result["mime_type"] == "text/markdown"
    document = Document.objects.get(pk=result["id"])
    assert document.owner == owner
    assert document.size == len(MANUAL_MD)
    stored = document.file.name
    assert stored.startswith("documents/") and stored.endswith(".md")
    assert "Maintenance" not in stored
    assert (media / stored).read_bytes() == MANUAL_MD


def test_it_queues_a_task_when_the_upload_commits(
    owner_client, media, django_capture_on_commit_callbacks
):
    from django_tasks_db.models import DBTaskResult

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(owner_client, upload_file("a.md", MANUAL_MD))
    task = DBTaskResult.objects.get()
    assert task.task_path == "documents.tasks.ingest_document"
    assert task.args_kwargs["kwargs"] == {"document_id": response.json()["results"][0]["id"]}


def test_the_same_file_twice_returns_the_existing_document(owner_client, media):
    first = _post(owner_client, upload_file("a.md", MANUAL_MD)).json()["results"][0]
    again = _post(owner_client, upload_file("renamed.md", MANUAL_MD))
    assert again.status_code == 200
    [result] = again.json()["results"]
    assert result["created"] is False and result["id"] == first["id"]
    assert Document.objects.count() == 1


def test_several_files_in_one_request(owner_client, media):
    response = _post(
        owner_client, upload_file("a.md", MANUAL_MD), upload_file("b.txt", b"Plain text manual.\n")
    )
    assert response.status_code == 201
    assert [r["mime_type"] for r in response.json()["results"]] == ["text/markdown", "text/plain"]


def test_a_file_over_the_limit_is_413_with_the_limit(owner_client, settings, media):
    settings.MAX_UPLOAD_SIZE_MB = 1
    response = _post(owner_client, upload_file("big.txt", b"a" * (1024 * 1024 + 1)))
    assert response.status_code == 413
    assert "the limit is 1 MB" in response.json()["error"]["message"]
    assert not Document.objects.exists()


def test_the_type_comes_from_the_content_not_the_name(owner_client, media):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    response = _post(owner_client, upload_file("manual.pdf", png))
    assert response.status_code == 415
    message = response.json()["error"]["message"]
    assert "PNG" in message
    assert "PDF, Word (.docx), Markdown and plain text" in message
    assert not Document.objects.exists()


def test_one_bad_file_rejects_the_whole_upload(owner_client, media):
    response = _post(
        owner_client, upload_file("ok.md", MANUAL_MD), upload_file("x.bin", b"\x00\x01\x02" * 50)
    )
    assert response.status_code == 415
    assert not Document.objects.exists()
    assert not list(media.rglob("*.*"))


def test_an_empty_file_is_400(owner_client, media):
    response = _post(owner_client, upload_file("empty.txt", b""))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "empty_file"


def test_no_file_is_400_with_a_hint(owner_client):
    response = owner_client.post("/api/documents", {})
    assert response.status_code == 400
    assert "files" in response.json()["error"]["fields"]


def test_path_traversal_and_long_names_never_reach_the_disk(owner_client, media):
    response = _post(owner_client, upload_file("../../../etc/cron.d/evil.md", MANUAL_MD))
    [result] = response.json()["results"]
    assert result["name"] == "evil.md"
    long_name = "x" * 300 + ".txt"
    response = _post(owner_client, upload_file(long_name, b"Some manual text.\n"))
    [result] = response.json()["results"]
    assert len(result["name"]) == 255 and result["name"].endswith(".txt")
    for document in Document.objects.all():
        assert document.file.path.startswith(str(media / "documents"))
        assert len(document.file.name) < 60


def test_uploads_are_rate_limited_per_user(owner_client, media):
    for n in range(5):
        assert (
            _post(owner_client, upload_file(f"{n}.txt", f"manual {n}\n".encode())).status_code
            == 201
        )
    response = _post(owner_client, upload_file("6.txt", b"manual six\n"))
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Too many uploads" in response.json()["error"]["message"]


def test_uploading_needs_sign_in(client):
    response = client.post("/api/documents", {"files": [upload_file("a.md", MANUAL_MD)]})
    assert response.status_code == 401


def test_a_failed_save_leaves_no_file_behind(owner, media, monkeypatch):
    from documents import services

    def broken(document_id, **kwargs):
        raise RuntimeError("queue unavailable")

    monkeypatch.setattr(services, "_enqueue_on_commit", broken)
    with pytest.raises(RuntimeError):
        services.document_create(
            owner=owner, upload=upload_file("a.md", MANUAL_MD), mime_type="text/markdown"
        )
    assert not Document.objects.exists()
    assert not [p for p in media.rglob("*") if p.is_file()]
