from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.db.models import Count
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.http import http_date
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from documents import filetypes
from documents.models import Document
from documents.neighbours import section_context
from documents.search import cached_search, clean_query
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
from rra import telemetry
from rra.api import json_error
from rra.ratelimit import limit_items, limit_request, too_many_files, too_many_requests_json


class DocumentSerializer(serializers.ModelSerializer):
    status_display = serializers.CharField(source="get_status_display", read_only=True)
    is_owner = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    chunk_count = serializers.SerializerMethodField()
    page_count = serializers.IntegerField(source="pages_total", read_only=True)

    class Meta:
        model = Document
        fields = [
            "id",
            "name",
            "mime_type",
            "size",
            "sha256",
            "visibility",
            "status",
            "status_display",
            "failure_reason",
            "progress",
            "page_count",
            "chunk_count",
            "is_owner",
            "embedding_model",
            "created_at",
            "updated_at",
            "ready_at",
        ]
        read_only_fields = [f for f in fields if f not in ("name", "visibility")]

    def get_is_owner(self, document: Document) -> bool:
        return document.owner_id == self.context["request"].user.pk

    def get_chunk_count(self, document: Document) -> int:
        annotated = getattr(document, "chunk_count", None)
        return annotated if annotated is not None else document.chunks_total

    def get_progress(self, document: Document) -> dict:
        now = timezone.now()
        rate = document.rate(now)
        return {
            "fraction": round(document.progress, 3),
            "pages_done": document.pages_done,
            "pages_total": document.pages_total,
            "chunks_embedded": document.chunks_embedded,
            "chunks_total": document.chunks_total,
            "eta_seconds": document.eta_seconds(now),
            # pages/s while extracting, passages/s while embedding (None: not yet known)
            "rate_per_second": rate[0] if rate else None,
            "rate_unit": rate[1] if rate else None,
        }

    def update(self, instance: Document, validated_data: dict) -> Document:
        # Save only what changed: the worker updates status and progress concurrently.
        for field, value in validated_data.items():
            setattr(instance, field, value)
        instance.save(update_fields=[*validated_data, "updated_at"])
        return instance

    def validate_name(self, value: str) -> str:
        return display_name(value)


class NewestFirst(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


def _upload_limit_bytes() -> int:
    return settings.MAX_UPLOAD_SIZE_MB * 1024 * 1024


class DocumentListView(APIView):
    def get(self, request: Request) -> Response:
        documents = Document.objects.readable_by(request.user)
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in Document.Status.values:
                return json_error(
                    400,
                    "invalid",
                    "Unknown status filter.",
                    {"status": [f"Use one of: {', '.join(Document.Status.values)}."]},
                )
            documents = documents.filter(status=wanted)
        if request.query_params.get("mine") in ("1", "true"):
            documents = documents.filter(owner=request.user)
        paginator = NewestFirst()
        page = paginator.paginate_queryset(documents, request, view=self)
        data = DocumentSerializer(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)

    def post(self, request: Request) -> Response:
        # UPLOAD_RATE counts files: refuse before reading the body when nothing is left,
        # then charge every file of the request (below).
        limited = limit_items(request, group="upload", rate=settings.UPLOAD_RATE, count=0)
        if limited:
            return too_many_requests_json(limited, "uploads")
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > _upload_limit_bytes() * settings.MAX_UPLOAD_FILES + 1024 * 1024:
            return json_error(
                413,
                "too_large",
                f"The upload is too large; each file may be at most {settings.MAX_UPLOAD_SIZE_MB} MB.",
            )
        uploads = request.FILES.getlist("files") + request.FILES.getlist("file")
        if not uploads:
            return json_error(
                400,
                "invalid",
                "Attach one or more files in the “files” field (multipart/form-data).",
                {"files": ["No file was submitted."]},
            )
        if len(uploads) > settings.MAX_UPLOAD_FILES:
            return json_error(
                400,
                "invalid",
                f"At most {settings.MAX_UPLOAD_FILES} files per upload.",
                {"files": [f"{len(uploads)} files were sent."]},
            )
        limited = limit_items(
            request, group="upload", rate=settings.UPLOAD_RATE, count=len(uploads)
        )
        if limited:
            return too_many_requests_json(limited, too_many_files(len(uploads), limited))
        visibility = request.data.get("visibility") or Document.Visibility.PRIVATE
        if visibility not in Document.Visibility.values:
            return json_error(
                400, "invalid", "Unknown visibility.", {"visibility": ["Use private or shared."]}
            )
        # Check every file first: one bad file rejects the upload and nothing is stored.
        checked = []
        for upload in uploads:
            try:
                checked.append((upload, document_validate_upload(upload=upload)))
            except FileTooLarge as exc:
                return json_error(413, "too_large", exc.message)
            except filetypes.EmptyFile as exc:
                return json_error(
                    400, "empty_file", f"“{display_name(upload.name or '')}”: {exc.message}"
                )
            except filetypes.FileRejected as exc:
                return json_error(
                    415, "unsupported_type", f"“{display_name(upload.name or '')}”: {exc.message}"
                )
        results = []
        for upload, mime in checked:
            try:
                results.append(
                    document_create(
                        owner=request.user, upload=upload, mime_type=mime, visibility=visibility
                    )
                )
            except StoreUnavailable:
                response = json_error(
                    503,
                    "storage_unavailable",
                    f"The file store is unavailable: {len(results)} of {len(checked)} files "
                    "were stored. Try again in a moment (files already stored are not "
                    "stored twice).",
                )
                response["Retry-After"] = "30"
                return response
        body = {
            "results": [
                {
                    **DocumentSerializer(r.document, context={"request": request}).data,
                    "created": r.created,
                    # A file already there keeps its visibility; say so when it differs.
                    **(
                        {"note": duplicate_note(r.document, asked=visibility)}
                        if not r.created and r.document.visibility != visibility
                        else {}
                    ),
                }
                for r in results
            ]
        }
        created = any(r.created for r in results)
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _readable(request: Request, document_id: int) -> Document:
    return get_object_or_404(
        Document.objects.readable_by(request.user).annotate(chunk_count=Count("chunks")),
        pk=document_id,
    )


def _changeable(request: Request, document_id: int) -> Document:
    document = get_object_or_404(Document.objects.readable_by(request.user), pk=document_id)
    if not Document.objects.changeable_by(request.user).filter(pk=document.pk).exists():
        raise PermissionDenied("Only the owner can change this document.")
    return document


class DocumentDetailView(APIView):
    def get(self, request: Request, document_id: int) -> Response:
        document = _readable(request, document_id)
        response = Response(DocumentSerializer(document, context={"request": request}).data)
        # Every change to a document (worker progress included) moves updated_at.
        response["Last-Modified"] = http_date(document.updated_at.timestamp())
        return response

    def patch(self, request: Request, document_id: int) -> Response:
        document = _changeable(request, document_id)
        was_shared = document.visibility == Document.Visibility.SHARED
        serializer = DocumentSerializer(
            document, data=request.data, partial=True, context={"request": request}
        )
        serializer.is_valid(raise_exception=True)
        serializer.save()
        if not was_shared and document.visibility == Document.Visibility.SHARED:
            telemetry.shared("document")
        return Response(serializer.data)

    def delete(self, request: Request, document_id: int) -> Response:
        document_delete(document=_changeable(request, document_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DocumentReprocessView(APIView):
    def post(self, request: Request, document_id: int) -> Response:
        document = document_reprocess(document=_changeable(request, document_id))
        return Response(
            DocumentSerializer(document, context={"request": request}).data,
            status=status.HTTP_202_ACCEPTED,
        )


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(trim_whitespace=True, allow_blank=True)
    k = serializers.IntegerField(required=False, min_value=1)
    documents = serializers.CharField(required=False, allow_blank=True)
    mode = serializers.ChoiceField(choices=["hybrid", "vector", "text"], required=False)
    # Extra fields per result: "content" adds each passage's whole text (for clients
    # that use RRA as a retriever; the snippet is a few highlighted fragments);
    # "context" the text of its section just before and after it (a fact that spans two
    # passages reads whole: documents.neighbours).
    include = serializers.CharField(required=False, allow_blank=True)

    INCLUDES = ("content", "context")

    def validate_include(self, value: str) -> set[str]:
        parts = {part.strip() for part in value.split(",") if part.strip()}
        unknown = sorted(parts - set(self.INCLUDES))
        if unknown:
            raise serializers.ValidationError(
                f"Unknown include {', '.join(unknown)}: use {', '.join(self.INCLUDES)}."
            )
        return parts

    def validate_q(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("Type something to search for.")
        return value

    def validate_k(self, value: int) -> int:
        if value > settings.SEARCH_MAX_K:
            raise serializers.ValidationError(f"Ask for at most {settings.SEARCH_MAX_K} results.")
        return value

    def validate_documents(self, value: str) -> list[int] | None:
        if not value.strip():
            return None
        try:
            ids = [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise serializers.ValidationError(
                "Give document ids as comma-separated numbers, e.g. documents=3,7."
            ) from None
        if len(ids) > 100:
            raise serializers.ValidationError("At most 100 documents per search.")
        return ids


def _hit_json(hit, *, content: bool = False, context: dict | None = None) -> dict:
    data = {
        "chunk_id": hit.chunk_id,
        "document": {"id": hit.document_id, "name": hit.document_name},
        "pages": {"first": hit.first_page, "last": hit.last_page, "label": hit.pages},
        "location": hit.location,
        "section": hit.section,
        "snippet": hit.snippet,
        "score": round(hit.score, 6),
        "scores": {
            "vector": None if hit.vector_score is None else round(hit.vector_score, 6),
            "vector_rank": hit.vector_rank,
            "text": None if hit.text_score is None else round(hit.text_score, 6),
            "text_rank": hit.text_rank,
            "rerank": None if hit.rerank_score is None else round(hit.rerank_score, 6),
            "coverage": None if hit.coverage is None else round(hit.coverage, 6),
        },
    }
    if content:
        data["content"] = hit.content
    if context is not None:
        data["context"] = context.get(hit.chunk_id, {"before": "", "after": ""})
    return data


class SearchView(APIView):
    def get(self, request: Request) -> Response:
        params = SearchQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        limited = limit_request(request, group="search", rate=settings.SEARCH_RATE)
        if limited:
            return too_many_requests_json(limited, "searches")
        query, truncated = clean_query(params.validated_data["q"])
        result, cached = cached_search(
            user=request.user,
            query=query,
            k=params.validated_data.get("k", settings.SEARCH_DEFAULT_K),
            document_ids=params.validated_data.get("documents"),
            mode=params.validated_data.get("mode", "hybrid"),
        )
        include = params.validated_data.get("include", ())
        # The neighbours come from the hits' own documents (readable as the hits are), read
        # after the cache: one query, and a cached result stays the search's own.
        context = section_context(result.hits) if "context" in include else None
        body = {
            "query": result.query,
            "truncated": truncated,
            "mode": result.mode,
            "reranked": result.reranked,
            "timings_ms": result.timings,
            "results": [
                _hit_json(h, content="content" in include, context=context) for h in result.hits
            ],
        }
        # The ETag leaves out "cached": the same results are the same representation.
        etag = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
        response = Response({**body, "cached": cached})
        response["ETag"] = f'"{etag}"'
        return response
