from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import ApiToken
from rra.ratelimit import limit_request, too_many_requests_json

MAX_TOKEN_DAYS = 3650


class TokenPages(PageNumberPagination):
    """The API's token list in pages of TOKENS_PER_PAGE, as the profile page shows it: a
    user may hold many tokens (new ones are rate limited, not counted), and one response
    must not grow with them. A page past the end is a 404 ("Invalid page.")."""

    def get_page_size(self, request) -> int:
        return settings.TOKENS_PER_PAGE


class ApiTokenSerializer(serializers.ModelSerializer):
    expires_in_days = serializers.IntegerField(
        write_only=True,
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_TOKEN_DAYS,
        help_text="Optional: the token stops working after this many days.",
    )

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "created_at",
            "last_used_at",
            "expires_at",
            "expires_in_days",
        ]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "expires_at"]


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField()
    type = serializers.CharField()
    created_at = serializers.DateTimeField()


@api_view(["GET"])
def me(request: Request) -> Response:
    return Response(MeSerializer(request.user).data)


@api_view(["GET", "POST"])
def tokens(request: Request) -> Response:
    if request.method == "POST":
        if isinstance(request.auth, ApiToken):
            # A leaked token must not be able to outlive its revocation through heirs.
            raise PermissionDenied(
                "API tokens cannot create tokens. Sign in to the site to create one."
            )
        serializer = ApiTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        limited = limit_request(request, group="token-create", rate=settings.TOKEN_CREATE_RATE)
        if limited:
            return too_many_requests_json(limited, "new tokens")
        days = serializer.validated_data.get("expires_in_days")
        token, raw = ApiToken.issue(
            user=request.user,
            name=serializer.validated_data["name"],
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
        # The secret is returned this once; only its hash is stored.
        return Response(
            {**ApiTokenSerializer(token).data, "token": raw}, status=status.HTTP_201_CREATED
        )
    active = ApiToken.objects.active().filter(user=request.user).order_by("-created_at", "-pk")
    pages = TokenPages()
    page = pages.paginate_queryset(active, request)
    return pages.get_paginated_response(ApiTokenSerializer(page, many=True).data)


@api_view(["DELETE"])
def token_detail(request: Request, token_id: int) -> Response:
    token = get_object_or_404(ApiToken.objects.active(), pk=token_id, user=request.user)
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    return Response(status=status.HTTP_204_NO_CONTENT)
