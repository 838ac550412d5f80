from django.conf import settings


def site(request):
    return {"SITE_NAME": "RRA", "SIGNUP_ENABLED": settings.SIGNUP_ENABLED}
