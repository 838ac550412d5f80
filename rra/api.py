"""Consistent JSON errors for the API.

Every error body has one shape: {"error": {"status", "code", "message", "fields"?}}.
DRF exceptions go through `exception_handler`; 404 and 500 raised outside DRF views
under /api/ get the same shape from the project's error handlers (rra/views.py).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler


def error_body(status: int, code: str, message: str, fields: dict | None = None) -> dict:
    error: dict = {"status": status, "code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def json_error(status: int, code: str, message: str, fields: dict | None = None) -> JsonResponse:
    return JsonResponse(error_body(status, code, message, fields), status=status)


def _flatten(detail) -> str:
    if isinstance(detail, list):
        return " ".join(_flatten(d) for d in detail)
    if isinstance(detail, dict):
        return " ".join(f"{k}: {_flatten(v)}" for k, v in detail.items())
    return str(detail)


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unhandled: Django's 500 handler answers
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        fields = {
            k: [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in exc.detail.items()
        }
        non_field = fields.pop("non_field_errors", None)
        message = " ".join(non_field) if non_field else "Some fields are not valid."
        response.data = error_body(response.status_code, "invalid", message, fields)
    elif isinstance(exc, Http404):
        response.data = error_body(404, "not_found", "Not found.")
    elif isinstance(exc, PermissionDenied):
        response.data = error_body(403, "permission_denied", "You do not have access to this.")
    else:
        detail = getattr(exc, "detail", str(exc))
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        response.data = error_body(response.status_code, str(code), _flatten(detail))
    return response
