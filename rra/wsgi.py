"""The WSGI application gunicorn serves (deploy/gunicorn.conf.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rra.settings")


class _NoBody:
    """An empty body that still closes the one it stands for (Django's request_finished:
    the access line, the database connection, a file)."""

    def __init__(self, body) -> None:
        self.body = body

    def __iter__(self):
        return iter(())

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        if close is not None:
            close()


def head_without_body(app):
    """A HEAD response's headers (Content-Length of the GET included) without its body.

    Django answers HEAD like GET, body included (only its development server drops it),
    and gunicorn sends what it is given: a keep-alive client, which reads no body after a
    HEAD, would take that body for the start of its next response (RFC 9110 9.3.2)."""

    def application(environ, start_response):
        body = app(environ, start_response)
        if environ.get("REQUEST_METHOD", "").upper() == "HEAD":
            return _NoBody(body)
        return body

    return application


application = head_without_body(get_wsgi_application())
