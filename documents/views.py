from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from documents import filetypes
from documents.models import Document
from documents.services import (
    FileTooLarge,
    display_name,
    document_create,
    document_delete,
    document_reprocess,
    document_validate_upload,
    duplicate_note,
)
from documents.stored_files import StoreUnavailable
from rra.ratelimit import limit_items, too_many_files, too_many_requests_page


@login_required
def library(request: HttpRequest) -> HttpResponse:
    # The first page is rendered here (it works without JavaScript); library.js then
    # loads the rest through the API into a virtual list and keeps statuses live.
    documents = Document.objects.readable_by(request.user)[:100]
    return render(
        request,
        "documents/library.html",
        {
            "documents": documents,
            "Status": Document.Status,
            "max_mb": settings.MAX_UPLOAD_SIZE_MB,
            "accepted": filetypes.ACCEPTED_DESCRIPTION,
            "Visibility": Document.Visibility,
        },
    )


@login_required
@require_POST
def upload(request: HttpRequest) -> HttpResponse:
    limited = limit_items(request, group="upload", rate=settings.UPLOAD_RATE, count=0)
    uploads = [] if limited else request.FILES.getlist("files")[: settings.MAX_UPLOAD_FILES]
    if uploads:
        # UPLOAD_RATE counts files, not requests.
        limited = limit_items(
            request, group="upload", rate=settings.UPLOAD_RATE, count=len(uploads)
        )
    if limited:
        return too_many_requests_page(
            request,
            limited,
            too_many_files(len(uploads), limited) if uploads else "uploads",
            back_url=reverse("documents:library"),
            back_label="Back to your library",
        )
    if not uploads:
        messages.error(request, "Choose one or more files to upload.")
        return redirect("documents:library")
    visibility = request.POST.get("visibility", Document.Visibility.PRIVATE)
    if visibility not in Document.Visibility.values:
        visibility = Document.Visibility.PRIVATE
    for upload in uploads:
        try:
            mime = document_validate_upload(upload=upload)
        except (FileTooLarge, filetypes.FileRejected) as exc:
            messages.error(
                request, f"“{display_name(upload.name or '')}” was not uploaded: {exc.message}"
            )
            continue
        try:
            result = document_create(
                owner=request.user, upload=upload, mime_type=mime, visibility=visibility
            )
        except StoreUnavailable:
            messages.error(
                request,
                f"“{display_name(upload.name or '')}” was not uploaded: the file store is "
                "unavailable. Try again in a moment.",
            )
            continue
        if result.created:
            messages.success(
                request, f"“{result.document.name}” was uploaded and is being processed."
            )
        else:
            messages.info(request, duplicate_note(result.document, asked=visibility))
    return redirect("documents:library")


def _owned(request: HttpRequest, document_id: int) -> Document:
    document = get_object_or_404(Document.objects.readable_by(request.user), pk=document_id)
    if not Document.objects.changeable_by(request.user).filter(pk=document.pk).exists():
        raise Http404
    return document


@login_required
@require_POST
def delete(request: HttpRequest, document_id: int) -> HttpResponse:
    document = _owned(request, document_id)
    name = document.name
    document_delete(document=document)
    messages.success(request, f"“{name}” was deleted.")
    return redirect("documents:library")


@login_required
@require_POST
def reprocess(request: HttpRequest, document_id: int) -> HttpResponse:
    document = document_reprocess(document=_owned(request, document_id))
    messages.success(request, f"“{document.name}” will be processed again.")
    return redirect("documents:library")
