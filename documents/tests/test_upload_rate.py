"""UPLOAD_RATE counts files, not requests: 20 files in one request use 20 of the budget."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from documents.models import Document

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_url", "media")]


def _files(n: int, start: int = 0) -> list[SimpleUploadedFile]:
    return [
        SimpleUploadedFile(f"manual-{i}.txt", f"Manual {i}: torque the bolts.\n".encode())
        for i in range(start, start + n)
    ]


def _api_upload(client, files):
    return client.post("/api/documents", {"files": files})


def test_it_counts_every_file_of_an_api_upload(owner_client, owner, settings):
    settings.UPLOAD_RATE = "5/m"
    assert _api_upload(owner_client, _files(3)).status_code == 201
    # Three more do not fit in the two left: refused, and nothing stored or charged.
    refused = _api_upload(owner_client, _files(3, start=3))
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "3 sent, 2 of 5 left" in refused.json()["error"]["message"]
    assert Document.objects.filter(owner=owner).count() == 3
    assert _api_upload(owner_client, _files(2, start=3)).status_code == 201
    # The budget is spent: the next request is refused whatever it carries.
    assert _api_upload(owner_client, _files(1, start=5)).status_code == 429
    assert Document.objects.filter(owner=owner).count() == 5


def test_more_files_than_the_whole_budget_are_told_to_come_in_smaller_batches(
    owner_client, settings
):
    settings.UPLOAD_RATE = "5/m"
    refused = _api_upload(owner_client, _files(6))
    assert refused.status_code == 429
    assert "6 sent, at most 5 fit in one window" in refused.json()["error"]["message"]
    assert _api_upload(owner_client, _files(5)).status_code == 201


def test_twenty_files_in_one_request_use_twenty_of_the_budget(owner_client, settings):
    settings.UPLOAD_RATE = "21/m"
    settings.MAX_UPLOAD_FILES = 20
    assert _api_upload(owner_client, _files(20)).status_code == 201
    assert _api_upload(owner_client, _files(1, start=20)).status_code == 201
    assert _api_upload(owner_client, _files(1, start=21)).status_code == 429


def test_the_library_page_counts_files_too(owner_client, owner, settings):
    settings.UPLOAD_RATE = "4/m"
    upload = reverse("documents:upload")
    assert owner_client.post(upload, {"files": _files(3)}).status_code == 302
    page = owner_client.post(upload, {"files": _files(2, start=3)})
    assert page.status_code == 429
    assert "Too many files: 2 sent, 1 of 4 left" in page.content.decode()
    assert owner_client.post(upload, {"files": _files(1, start=3)}).status_code == 302
    assert Document.objects.filter(owner=owner).count() == 4


def test_the_budget_comes_back_when_the_window_ends(owner_client, owner, settings, ratelimit_clock):
    settings.UPLOAD_RATE = "2/m"
    assert _api_upload(owner_client, _files(2)).status_code == 201
    refused = _api_upload(owner_client, _files(1, start=2))
    assert refused.status_code == 429
    # Retry-After is exact: a second early is still refused, on time is served.
    ratelimit_clock.advance(int(refused["Retry-After"]) - 1)
    assert _api_upload(owner_client, _files(1, start=2)).status_code == 429
    ratelimit_clock.advance(1)
    assert _api_upload(owner_client, _files(2, start=2)).status_code == 201
    assert Document.objects.filter(owner=owner).count() == 4


def test_two_uploads_racing_for_the_same_budget_never_get_more_than_it(owner, monkeypatch):
    """Upload B charges its files between upload A's check and A's charge (two requests
    of one user in parallel): B fits, A is refused, and at most the limit is granted."""
    from django.test import RequestFactory

    from rra import ratelimit

    def request():
        made = RequestFactory().post("/api/documents")
        made.user = owner
        return made

    real_usage = ratelimit.usage
    checks = []

    def usage(*args, **kwargs):
        result = real_usage(*args, **kwargs)
        if not kwargs["increment"]:
            checks.append(result)
            if len(checks) == 1:  # A has read "0 of 5 used"; now B runs to the end
                assert ratelimit.limit_items(request(), group="upload", rate="5/m", count=3) is None
        return result

    monkeypatch.setattr(ratelimit, "usage", usage)
    refused = ratelimit.limit_items(request(), group="upload", rate="5/m", count=3)
    assert checks[0].count == 0  # A's check saw the whole budget
    assert refused is not None and refused.count > refused.limit == 5
    assert "0 of 5 left" in ratelimit.too_many_files(3, refused)
    # Nothing is left for anyone in this window.
    assert ratelimit.limit_items(request(), group="upload", rate="5/m", count=1) is not None
