from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils import timezone
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import ApiToken


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at"]


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
        serializer = ApiTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, raw = ApiToken.issue(user=request.user, name=serializer.validated_data["name"])
        # The secret is returned this once; only its hash is stored.
        return Response(
            {**ApiTokenSerializer(token).data, "token": raw}, status=status.HTTP_201_CREATED
        )
    active = ApiToken.objects.active().filter(user=request.user)
    return Response({"results": ApiTokenSerializer(active, many=True).data})


@api_view(["DELETE"])
def token_detail(request: Request, token_id: int) -> Response:
    token = get_object_or_404(ApiToken.objects.active(), pk=token_id, user=request.user)
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    return Response(status=status.HTTP_204_NO_CONTENT)
