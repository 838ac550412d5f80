from django.contrib import admin, messages
from django.db.models import Count

from documents.models import Chunk, Document
from documents.services import document_delete, document_reprocess


class ChunkInline(admin.TabularInline):
    model = Chunk
    fields = ["index", "first_page", "last_page", "section", "token_count", "content"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    ordering = ["index"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("search_vector")


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "owner",
        "status",
        "visibility",
        "pages_total",
        "chunk_count",
        "size",
        "created_at",
    ]
    list_filter = ["status", "visibility", "mime_type", ("owner", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "owner__email", "sha256"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"
    actions = ["reprocess", "delete_with_files"]
    inlines = [ChunkInline]
    readonly_fields = [
        "file",
        "mime_type",
        "size",
        "sha256",
        "status",
        "failure_reason",
        "pages_done",
        "pages_total",
        "chunks_embedded",
        "chunks_total",
        "attempts",
        "heartbeat_at",
        "processing_started_at",
        "ready_at",
        "embedding_model",
        "created_at",
        "updated_at",
    ]
    fields = ["name", "owner", "visibility", *readonly_fields]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(chunk_count=Count("chunks"))

    @admin.display(ordering="chunk_count", description="chunks")
    def chunk_count(self, obj) -> int:
        return obj.chunk_count

    def has_add_permission(self, request) -> bool:
        return False  # documents arrive through upload, which validates and queues them

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # would skip file removal; see delete_with_files
        return actions

    @admin.action(description="Process selected documents again")
    def reprocess(self, request, queryset):
        for document in queryset:
            document_reprocess(document=document)
        self.message_user(request, f"{queryset.count()} document(s) queued.", messages.SUCCESS)

    @admin.action(description="Delete selected documents (with files, chunks, embeddings)")
    def delete_with_files(self, request, queryset):
        count = 0
        for document in queryset:
            document_delete(document=document)
            count += 1
        self.message_user(request, f"{count} document(s) deleted.", messages.SUCCESS)

    def save_model(self, request, obj, form, change):
        # Only the edited fields: the worker updates status and progress concurrently.
        if change:
            obj.save(update_fields=[*form.changed_data, "updated_at"])
        else:
            super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):
        document_delete(document=obj)
