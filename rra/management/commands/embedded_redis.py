from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from rra import embedded_redis


class Command(BaseCommand):
    help = "Show or stop the private Redis (used when REDIS_URL is unset)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["status", "stop"])

    def handle(self, *args, action: str, **options):
        private = embedded_redis.url(settings.EMBEDDED_REDIS_DIR)
        if not settings.EMBEDDED_REDIS or private != settings.REDIS_URL:
            raise CommandError("REDIS_URL is set (or EMBEDDED_REDIS is off): no private Redis.")
        if action == "stop":
            stopped = embedded_redis.stop(settings.EMBEDDED_REDIS_DIR)
            self.stdout.write("stopped" if stopped else "not running")
            return
        self.stdout.write(f"running: {settings.REDIS_URL} (data in {settings.EMBEDDED_REDIS_DIR})")
