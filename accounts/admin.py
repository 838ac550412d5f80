from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.utils import timezone
from django.utils.translation import ngettext

from accounts.models import ApiToken, User


class UserAdminChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class UserAdminCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class ApiTokenInline(admin.TabularInline):
    model = ApiToken
    extra = 0
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["name", "prefix", "created_at", "last_used_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserAdminChangeForm
    add_form = UserAdminCreationForm
    ordering = ["email"]
    list_display = ["email", "name", "type", "is_active", "created_at", "last_login"]
    list_filter = ["type", "is_active"]
    search_fields = ["email", "name"]
    readonly_fields = ["created_at", "last_login"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["name"]}),
        ("Access", {"fields": ["type", "is_active", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["created_at", "last_login"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "type", "password1", "password2"]}),
    ]
    filter_horizontal = ["groups", "user_permissions"]
    inlines = [ApiTokenInline]
    actions = ["deactivate", "reactivate", "revoke_api_tokens"]

    @admin.action(description="Deactivate (signs them out, revokes their API tokens)")
    def deactivate(self, request, queryset) -> None:
        if queryset.filter(pk=request.user.pk).exists():
            self.message_user(request, "You cannot deactivate yourself.", messages.ERROR)
            queryset = queryset.exclude(pk=request.user.pk)
        # The signed-in user comes from the query cache; update() invalidates it, so the
        # next request of a session or a token finds the account inactive.
        count = queryset.filter(is_active=True).update(is_active=False)
        revoked = _revoke_tokens(queryset)
        self.message_user(
            request,
            ngettext("%d user deactivated", "%d users deactivated", count) % count
            + f", {revoked} API token(s) revoked.",
            messages.SUCCESS,
        )

    @admin.action(description="Reactivate")
    def reactivate(self, request, queryset) -> None:
        count = queryset.filter(is_active=False).update(is_active=True)
        self.message_user(
            request,
            ngettext("%d user reactivated.", "%d users reactivated.", count) % count,
            messages.SUCCESS,
        )

    @admin.action(description="Revoke all their API tokens")
    def revoke_api_tokens(self, request, queryset) -> None:
        revoked = _revoke_tokens(queryset)
        self.message_user(request, f"{revoked} API token(s) revoked.", messages.SUCCESS)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []


def _revoke_tokens(users) -> int:
    """Revoke the active tokens of these users; update() invalidates the cached tokens."""
    return ApiToken.objects.active().filter(user__in=users).update(revoked_at=timezone.now())


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__email", "prefix"]
    readonly_fields = ["key_hash", "prefix", "created_at", "last_used_at"]
    list_select_related = ["user"]
    actions = ["revoke"]

    @admin.action(description="Revoke")
    def revoke(self, request, queryset) -> None:
        revoked = queryset.active().update(revoked_at=timezone.now())
        self.message_user(request, f"{revoked} API token(s) revoked.", messages.SUCCESS)
