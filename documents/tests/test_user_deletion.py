"""Deleting a user takes their documents' files off the disk, once the delete commits."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import transaction

from documents.models import Chunk, Document
from documents.pages import cache_dir
from documents.tests.conftest import make_document

pytestmark = pytest.mark.django_db(transaction=True)


class Boom(Exception):
    pass


def _files_of(user, count: int = 2) -> list[Path]:
    paths = []
    for n in range(count):
        document = make_document(user, name=f"manual-{n}.md", content=f"# Manual {n}\n".encode())
        Chunk.objects.create(
            document=document,
            index=0,
            first_page=1,
            last_page=1,
            content=f"Manual {n}",
            token_count=2,
            start_offset=0,
            end_offset=10,
        )
        cache = cache_dir(document.pk)
        cache.mkdir(parents=True)
        (cache / "1-1000.png").write_bytes(b"png")
        paths += [Path(document.file.path), cache]
    return paths


def test_it_removes_the_files_when_the_orm_delete_commits(owner, member, media):
    gone = _files_of(owner)
    kept = _files_of(member)
    with transaction.atomic():
        owner.delete()
        # Still there until the commit: a rollback must find them.
        assert all(p.exists() for p in gone)
    assert not any(p.exists() for p in gone)
    assert Document.objects.count() == 2 and all(p.exists() for p in kept)


def test_it_keeps_the_files_when_the_delete_rolls_back(owner, media):
    paths = _files_of(owner)
    owner_id = owner.pk
    with pytest.raises(Boom), transaction.atomic():
        owner.delete()
        raise Boom
    assert all(p.exists() for p in paths)
    assert Document.objects.filter(owner_id=owner_id).count() == 2
    assert Chunk.objects.filter(document__owner_id=owner_id).count() == 2


def test_it_removes_the_files_when_an_admin_deletes_the_user(client, admin_user, owner, media):
    paths = _files_of(owner)
    client.force_login(admin_user)
    confirm = client.get(f"/admin/accounts/user/{owner.pk}/delete/")
    assert confirm.status_code == 200
    response = client.post(f"/admin/accounts/user/{owner.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Document.objects.exists()
    assert not any(p.exists() for p in paths)
    assert not list((media / "documents").iterdir())


def test_it_removes_the_files_of_users_deleted_in_bulk_from_admin(
    client, admin_user, owner, member, media
):
    paths = _files_of(owner) + _files_of(member)
    client.force_login(admin_user)
    response = client.post(
        "/admin/accounts/user/",
        {"action": "delete_selected", "_selected_action": [owner.pk, member.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Document.objects.exists()
    assert not any(p.exists() for p in paths)


def test_a_failing_file_delete_does_not_stop_the_others(owner, media):
    first, first_cache, second, second_cache = _files_of(owner)
    first.unlink()
    first.mkdir()  # the storage cannot delete a directory: an OSError
    (first / "keep").write_bytes(b"x")
    owner.delete()
    assert not second.exists() and not first_cache.exists() and not second_cache.exists()
    assert not Document.objects.exists()
