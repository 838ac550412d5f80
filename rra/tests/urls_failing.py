"""The site's URLs plus a view that fails (error tracking and error metrics tests)."""

import logging

from django.urls import path

from rra.urls import urlpatterns as site_urlpatterns

logger = logging.getLogger("rra.tests")


def fail(request):
    logger.info("about to fail for owner@example.com")
    raise RuntimeError("the failing view failed for owner@example.com")


urlpatterns = [path("test/fail", fail, name="test-fail"), *site_urlpatterns]

handler500 = "rra.views.server_error"
