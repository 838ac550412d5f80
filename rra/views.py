from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from rra.api import json_error


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception=None) -> HttpResponse:
    if _wants_json(request):
        return json_error(404, "not_found", "Not found.")
    return render(request, "errors/404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return json_error(
            500, "server_error", "Something went wrong on our side. Please try again."
        )
    return render(request, "errors/500.html", status=500)


def permission_denied(request: HttpRequest, exception=None) -> HttpResponse:
    if _wants_json(request):
        return json_error(403, "permission_denied", "You do not have access to this.")
    return render(request, "errors/403.html", status=403)


def bad_request(request: HttpRequest, exception=None) -> HttpResponse:
    if _wants_json(request):
        return json_error(400, "bad_request", "The request could not be understood.")
    return render(request, "errors/400.html", status=400)
