"""The product's URLs plus /bench/hello: the smallest Django view, served through the
same middleware, workers and settings as the API, so bench/load.py can compare the API
with what this machine serves at most. Selected by bench/load_settings.py only."""

from django.http import HttpResponse
from django.urls import path

from rra.urls import handler400, handler403, handler404, handler500  # noqa: F401
from rra.urls import urlpatterns as product_urlpatterns


def hello(request):
    return HttpResponse(b"hello", content_type="text/plain")


urlpatterns = [path("bench/hello", hello, name="bench-hello"), *product_urlpatterns]
