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


def _database_unavailable() -> bool:
    """Whether the error being handled is the database not answering (restarting,
    unreachable, or the pool out of connections): worth a retry, not a bug."""
    import sys

    from django.db import InterfaceError, OperationalError
    from psycopg_pool import PoolTimeout

    error = sys.exc_info()[1]
    return isinstance(error, OperationalError | InterfaceError | PoolTimeout)


def server_error(request: HttpRequest) -> HttpResponse:
    if _database_unavailable():
        # 503 with Retry-After: clients and load balancers retry instead of giving up.
        if _wants_json(request):
            response = json_error(
                503,
                "database_unavailable",
                "The database is not answering right now. Please try again in a few seconds.",
            )
        else:
            response = HttpResponse(
                "The database is not answering right now. Please try again in a few seconds.",
                status=503,
                content_type="text/plain; charset=utf-8",
            )
        response["Retry-After"] = "5"
        return response
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
