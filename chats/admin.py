from django.contrib import admin, messages
from django.db.models import Count
from django.utils.translation import ngettext

from chats.models import Chat, Citation, Message, Vote


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["role", "status", "content", "model", "completion_tokens", "created_at"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False


@admin.register(Chat)
class ChatAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "visibility", "message_count", "created_at", "updated_at"]
    list_filter = ["visibility", "created_at"]
    search_fields = ["title", "owner__email"]
    list_select_related = ["owner"]
    readonly_fields = ["id", "created_at", "updated_at"]
    inlines = [MessageInline]
    actions = ["make_private"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(message_count=Count("messages"))

    @admin.action(description="Make private (closes their public links)")
    def make_private(self, request, queryset) -> None:
        # update() invalidates the cached chats: the public link stops working at once.
        count = (
            Chat.objects.filter(pk__in=queryset.values("pk"))
            .exclude(visibility=Chat.Visibility.PRIVATE)
            .update(visibility=Chat.Visibility.PRIVATE)
        )
        self.message_user(
            request,
            ngettext("%d chat made private.", "%d chats made private.", count) % count,
            messages.SUCCESS,
        )

    @admin.display(ordering="message_count", description="messages")
    def message_count(self, obj) -> int:
        return obj.message_count


class CitationInline(admin.TabularInline):
    model = Citation
    fields = ["number", "document_name", "first_page", "last_page", "score"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["chat", "role", "status", "model", "completion_tokens", "created_at"]
    list_filter = ["role", "status", "model"]
    search_fields = ["content", "chat__title"]
    list_select_related = ["chat"]
    readonly_fields = [
        "chat",
        "role",
        "status",
        "error",
        "prompt_tokens",
        "completion_tokens",
        "model",
        "created_at",
    ]
    inlines = [CitationInline]


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ["message", "user", "value", "created_at"]
    list_filter = ["value"]
    list_select_related = ["message", "user"]
